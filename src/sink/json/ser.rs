//! A JSON writer for records: the bytes serde_json writes with the
//! terminal-safe formatter ([`super::TerminalSafe`]), spelled faster.
//!
//! serde_json looks up every byte of every string and key in its escape
//! table and hands each run between escapes to the formatter, which scans
//! it again for terminal-unsafe characters; with records of a kilobyte
//! and more, that was a fifth of a whole run on small-packet traffic.
//! Here a string whose bytes are all printable ASCII without `"` and `\`
//! (nearly every string: field names, addresses, header values) is one
//! word scan ([`crate::escape::json_plain`]) and one copy; any other
//! string, and every number, is written by serde_json itself, so the
//! output is the same byte for byte (tests below, and the golden files).
//!
//! What this writer does not do (a map key that is not a string or a
//! number, serde_json's private raw values) is an error, on which the
//! caller writes the whole record with serde_json instead.

use serde::Serialize;
use serde::ser::{self, Impossible};
use serde_json::ser::{CompactFormatter, Formatter};

/// Something only serde_json writes: the record is written by it instead.
#[derive(Debug)]
pub struct Unsupported;

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("left to serde_json")
    }
}

impl std::error::Error for Unsupported {}

impl ser::Error for Unsupported {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Unsupported
    }
}

type R = Result<(), Unsupported>;

/// `value` as JSON appended to `out`, as serde_json with
/// [`super::TerminalSafe`] writes it; `Err`: `out` holds part of it.
pub fn append<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> R {
    value.serialize(&mut Ser { out })
}

struct Ser<'a> {
    out: &'a mut Vec<u8>,
}

/// A string, quoted and escaped.
#[inline]
fn string(out: &mut Vec<u8>, s: &str) {
    if crate::escape::json_plain(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        escaped(out, s);
    }
}

/// A string with something to escape: serde_json's own escapes, then the
/// terminal rule's.
#[cold]
fn escaped(out: &mut Vec<u8>, s: &str) {
    let mut ser = serde_json::Serializer::with_formatter(&mut *out, super::TerminalSafe);
    // Writing to a Vec does not fail.
    let _ = ser::Serializer::serialize_str(&mut ser, s);
}

/// A number, as serde_json's formatter writes it (to a Vec: no error).
macro_rules! number {
    ($out:expr, $f:ident, $v:expr) => {{
        let _ = CompactFormatter.$f($out, $v);
    }};
}

/// Every integer method of a serializer: the number as serde_json's
/// formatter writes it, through `$wrap` (as it is, or quoted for a key).
macro_rules! integers {
    ($wrap:ident) => {
        integers!($wrap; serialize_i8: i8 = write_i8, serialize_i16: i16 = write_i16, serialize_i32: i32 = write_i32,
            serialize_i64: i64 = write_i64, serialize_i128: i128 = write_i128, serialize_u8: u8 = write_u8,
            serialize_u16: u16 = write_u16, serialize_u32: u32 = write_u32, serialize_u64: u64 = write_u64,
            serialize_u128: u128 = write_u128);
    };
    ($wrap:ident; $($method:ident: $ty:ty = $write:ident),*) => {$(
        fn $method(self, v: $ty) -> R {
            self.$wrap(|o| number!(o, $write, v))
        }
    )*};
}

impl<'a> Ser<'a> {
    fn plain(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> R {
        write(self.out);
        Ok(())
    }

    /// `{"variant":` and an array or object, closed by `close`.
    fn variant<'b>(
        &'b mut self,
        variant: &str,
        open: &[u8],
        close: &'static [u8],
    ) -> Result<Compound<'a, 'b>, Unsupported> {
        self.out.push(b'{');
        string(self.out, variant);
        self.out.extend_from_slice(open);
        Ok(Compound { ser: self, first: true, close })
    }
}

impl<'a, 'b> ser::Serializer for &'b mut Ser<'a> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Compound<'a, 'b>;
    type SerializeTuple = Compound<'a, 'b>;
    type SerializeTupleStruct = Compound<'a, 'b>;
    type SerializeTupleVariant = Compound<'a, 'b>;
    type SerializeMap = Compound<'a, 'b>;
    type SerializeStruct = Compound<'a, 'b>;
    type SerializeStructVariant = Compound<'a, 'b>;

    fn serialize_bool(self, v: bool) -> R {
        self.out.extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    integers!(plain);
    fn serialize_f32(self, v: f32) -> R {
        if v.is_finite() {
            number!(self.out, write_f32, v);
        } else {
            self.out.extend_from_slice(b"null");
        }
        Ok(())
    }
    fn serialize_f64(self, v: f64) -> R {
        if v.is_finite() {
            number!(self.out, write_f64, v);
        } else {
            self.out.extend_from_slice(b"null");
        }
        Ok(())
    }
    fn serialize_char(self, v: char) -> R {
        string(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_str(self, v: &str) -> R {
        string(self.out, v);
        Ok(())
    }
    fn serialize_bytes(self, v: &[u8]) -> R {
        let _ = CompactFormatter.write_byte_array(self.out, v);
        Ok(())
    }
    fn serialize_none(self) -> R {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> R {
        value.serialize(self)
    }
    fn serialize_unit(self) -> R {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_unit_struct(self, _name: &'static str) -> R {
        self.serialize_unit()
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> R {
        string(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> R {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> R {
        self.out.push(b'{');
        string(self.out, variant);
        self.out.push(b':');
        value.serialize(&mut *self)?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, Unsupported> {
        self.out.push(b'[');
        Ok(Compound { ser: self, first: true, close: b"]" })
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a, 'b>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _name: &'static str, len: usize) -> Result<Compound<'a, 'b>, Unsupported> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, Unsupported> {
        self.variant(variant, b":[", b"]}")
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a, 'b>, Unsupported> {
        self.out.push(b'{');
        Ok(Compound { ser: self, first: true, close: b"}" })
    }
    fn serialize_struct(self, name: &'static str, len: usize) -> Result<Compound<'a, 'b>, Unsupported> {
        // serde_json's raw values and arbitrary-precision numbers.
        if name.starts_with("$serde_json") {
            return Err(Unsupported);
        }
        self.serialize_map(Some(len))
    }
    /// A `Display` value as a string, formatted in place (serde's default
    /// makes a `String` of it first).
    fn collect_str<T: std::fmt::Display + ?Sized>(self, value: &T) -> R {
        struct Append<'v>(&'v mut Vec<u8>);
        impl std::fmt::Write for Append<'_> {
            fn write_str(&mut self, s: &str) -> std::fmt::Result {
                self.0.extend_from_slice(s.as_bytes());
                Ok(())
            }
        }
        let start = self.out.len();
        self.out.push(b'"');
        std::fmt::Write::write_fmt(&mut Append(self.out), format_args!("{value}")).map_err(|_| Unsupported)?;
        if crate::escape::json_plain(&self.out[start + 1..]) {
            self.out.push(b'"');
        } else {
            let text = self.out.split_off(start + 1);
            self.out.truncate(start);
            escaped(self.out, std::str::from_utf8(&text).map_err(|_| Unsupported)?);
        }
        Ok(())
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a, 'b>, Unsupported> {
        self.variant(variant, b":{", b"}}")
    }
}

/// An array or object being written.
pub struct Compound<'a, 'b> {
    ser: &'b mut Ser<'a>,
    first: bool,
    close: &'static [u8],
}

impl Compound<'_, '_> {
    #[inline]
    fn comma(&mut self) {
        if !std::mem::take(&mut self.first) {
            self.ser.out.push(b',');
        }
    }
    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        self.comma();
        value.serialize(&mut *self.ser)
    }
    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> R {
        self.comma();
        string(self.ser.out, key);
        self.ser.out.push(b':');
        value.serialize(&mut *self.ser)
    }
    fn close(self) -> R {
        self.ser.out.extend_from_slice(self.close);
        Ok(())
    }
}

/// serde's array-like traits: each element after a comma.
macro_rules! elements {
    ($($Trait:ident :: $method:ident),*) => {$(
        impl ser::$Trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Unsupported;
            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
                self.element(value)
            }
            fn end(self) -> R {
                self.close()
            }
        }
    )*};
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_, '_> {
    type Ok = ();
    type Error = Unsupported;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> R {
        self.comma();
        key.serialize(Key { out: self.ser.out })
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> R {
        self.ser.out.push(b':');
        value.serialize(&mut *self.ser)
    }
    fn end(self) -> R {
        self.close()
    }
}

/// serde's struct-like traits: each field a key and a value.
macro_rules! fields {
    ($($Trait:ident),*) => {$(
        impl ser::$Trait for Compound<'_, '_> {
            type Ok = ();
            type Error = Unsupported;
            fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> R {
                self.field(key, value)
            }
            fn end(self) -> R {
                self.close()
            }
        }
    )*};
}

fields!(SerializeStruct, SerializeStructVariant);

/// A map key: a string, or a number or boolean written as a string, as
/// serde_json's map keys are; anything else is left to serde_json (which
/// refuses it).
struct Key<'a> {
    out: &'a mut Vec<u8>,
}

impl Key<'_> {
    fn quoted(self, write: impl FnOnce(&mut Vec<u8>)) -> R {
        self.out.push(b'"');
        write(self.out);
        self.out.push(b'"');
        Ok(())
    }
}

impl ser::Serializer for Key<'_> {
    type Ok = ();
    type Error = Unsupported;
    type SerializeSeq = Impossible<(), Unsupported>;
    type SerializeTuple = Impossible<(), Unsupported>;
    type SerializeTupleStruct = Impossible<(), Unsupported>;
    type SerializeTupleVariant = Impossible<(), Unsupported>;
    type SerializeMap = Impossible<(), Unsupported>;
    type SerializeStruct = Impossible<(), Unsupported>;
    type SerializeStructVariant = Impossible<(), Unsupported>;

    fn serialize_str(self, v: &str) -> R {
        string(self.out, v);
        Ok(())
    }
    fn serialize_char(self, v: char) -> R {
        string(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }
    fn serialize_unit_variant(self, _name: &'static str, _index: u32, variant: &'static str) -> R {
        string(self.out, variant);
        Ok(())
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> R {
        value.serialize(self)
    }
    fn serialize_bool(self, v: bool) -> R {
        self.quoted(|o| o.extend_from_slice(if v { b"true" } else { b"false" }))
    }
    integers!(quoted);
    fn serialize_f32(self, v: f32) -> R {
        if !v.is_finite() {
            return Err(Unsupported);
        }
        self.quoted(|o| number!(o, write_f32, v))
    }
    fn serialize_f64(self, v: f64) -> R {
        if !v.is_finite() {
            return Err(Unsupported);
        }
        self.quoted(|o| number!(o, write_f64, v))
    }
    fn serialize_bytes(self, _v: &[u8]) -> R {
        Err(Unsupported)
    }
    fn serialize_none(self) -> R {
        Err(Unsupported)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, _value: &T) -> R {
        Err(Unsupported)
    }
    fn serialize_unit(self) -> R {
        Err(Unsupported)
    }
    fn serialize_unit_struct(self, _name: &'static str) -> R {
        Err(Unsupported)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> R {
        Err(Unsupported)
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Self::SerializeSeq, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple(self, _len: usize) -> Result<Self::SerializeTuple, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleStruct, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeTupleVariant, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Self::SerializeMap, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Self::SerializeStruct, Unsupported> {
        Err(Unsupported)
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> Result<Self::SerializeStructVariant, Unsupported> {
        Err(Unsupported)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Serialize;

    /// serde_json's bytes, with the terminal-safe formatter.
    fn reference<T: Serialize + ?Sized>(v: &T) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::with_formatter(&mut out, super::super::TerminalSafe);
        v.serialize(&mut ser).ok().map(|_| out)
    }

    /// This writer's bytes; `None`: left to serde_json.
    fn fast<T: Serialize + ?Sized>(v: &T) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        super::append(&mut out, v).ok().map(|_| out)
    }

    /// Either the same bytes as serde_json, or left to it.
    fn same<T: Serialize + ?Sized + std::fmt::Debug>(v: &T) -> bool {
        match fast(v) {
            Some(f) => {
                let r = reference(v).expect("serde_json writes what this writer does");
                assert_eq!(String::from_utf8_lossy(&f), String::from_utf8_lossy(&r), "{v:?}");
                true
            }
            None => false,
        }
    }

    /// Code points from every class the two escapers treat differently:
    /// printable ASCII, `"` and `\`, JSON's named escapes, other C0
    /// controls, DEL, C1 controls, bidi overrides and isolates, other
    /// non-ASCII of 2, 3 and 4 bytes.
    const CLASSES: &[char] = &[
        'a',
        'Z',
        ' ',
        '~',
        '/',
        '"',
        '\\',
        '\n',
        '\r',
        '\t',
        '\u{8}',
        '\u{c}',
        '\0',
        '\u{1}',
        '\u{1b}',
        '\u{1f}',
        '\u{7f}',
        '\u{80}',
        '\u{9b}',
        '\u{9f}',
        '\u{a0}',
        'é',
        '\u{202a}',
        '\u{202e}',
        '\u{2066}',
        '\u{2069}',
        '\u{2028}',
        '€',
        '\u{fffd}',
        '😀',
        '\u{10ffff}',
    ];

    #[test]
    fn every_string_is_written_as_serde_json_writes_it() {
        // Every class alone and beside every other, at word boundaries too.
        for &a in CLASSES {
            for &b in CLASSES {
                for pad in 0..10 {
                    let s: String = std::iter::repeat_n('x', pad).chain([a, b]).chain("tail".chars()).collect();
                    assert!(same(&s));
                    assert!(same(&BTreeMap::from([(s.clone(), s.clone())])));
                }
            }
        }
        // Longer mixes, from a fixed sequence (xorshift).
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            let mut s = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            for i in 0..len {
                let r = x.rotate_left(i as u32 * 5);
                // Mostly plain, as records are.
                s.push(if r.is_multiple_of(4) { CLASSES[(r >> 8) as usize % CLASSES.len()] } else { 'k' });
            }
            assert!(same(&s));
        }
    }

    #[derive(Debug, Serialize)]
    enum Shape {
        Unit,
        Newtype(u8),
        Tuple(i32, String),
        Struct { a: Option<f64>, b: Vec<u16> },
    }

    #[derive(Debug, Serialize)]
    struct Inner {
        x: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
    }

    #[derive(Debug, Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Tagged {
        One {
            #[serde(flatten)]
            inner: Inner,
            list: Vec<Shape>,
        },
    }

    #[derive(Debug, Serialize)]
    struct Unit;

    #[derive(Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
    struct Wrap(&'static str);

    #[test]
    fn every_serde_shape_is_written_as_serde_json_writes_it() {
        assert!(same(&Shape::Unit));
        assert!(same(&Shape::Newtype(7)));
        assert!(same(&Shape::Tuple(-3, "t\u{1b}".into())));
        assert!(same(&Shape::Struct { a: Some(f64::NAN), b: vec![] }));
        assert!(same(&Shape::Struct { a: None, b: vec![1, 2] }));
        let t = Tagged::One {
            inner: Inner { x: u64::MAX, skipped: None },
            list: vec![Shape::Unit, Shape::Struct { a: Some(0.1), b: vec![3] }],
        };
        assert!(same(&t));
        for f in [0.0, -0.0, 1.0, 1e-7, 1.5e300, 1800000000.011813, f64::INFINITY, f64::MIN_POSITIVE] {
            assert!(same(&f));
            assert!(same(&(f as f32)));
        }
        assert!(same(&(i128::MIN, u128::MAX, i8::MIN, u16::MAX, true, false, 'q', '\u{202e}')));
        assert!(same(&(Unit, Wrap("w"), (), Some(()), None::<u8>)));
        assert!(same(&serde_bytes_like()));
        assert!(same(&Vec::<u8>::new()));
        assert!(same(&BTreeMap::<u8, u8>::new()));
        // Keys: strings, numbers and booleans, as serde_json spells them.
        assert!(same(&BTreeMap::from([(3u16, "a"), (500, "b")])));
        assert!(same(&BTreeMap::from([(-1i64, 1)])));
        assert!(same(&BTreeMap::from([(true, 1), (false, 2)])));
        assert!(same(&BTreeMap::from([('k', 1)])));
        assert!(same(&BTreeMap::from([(Wrap("nt"), 1)])));
        assert!(same(&serde_json::json!({"k": [1, -2, 2.5, null, "s\u{9b}", {"n": {}}]})));
        // `Display` values (flows, addresses), plain and not.
        use crate::flow::{Endpoint, FlowKey};
        let flow = FlowKey {
            src: Endpoint::new("10.0.0.1".parse().unwrap(), 5),
            dst: Endpoint::new("::1".parse().unwrap(), 80),
        };
        assert!(same(&flow));
        assert!(same(&(Shown("plain"), Shown("x\u{1b}\"é\u{202e}"), Shown(""))));
    }

    /// Keys serde_json refuses are left to it (it says why).
    #[test]
    fn what_serde_json_refuses_is_left_to_it() {
        assert!(!same(&BTreeMap::from([((1, 2), 1)])));
        assert!(reference(&BTreeMap::from([((1, 2), 1)])).is_none());
        assert!(!same(&BTreeMap::from([(None::<u8>, 1)])));
    }

    /// A value written with `collect_str`.
    #[derive(Debug)]
    struct Shown(&'static str);
    impl Serialize for Shown {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self.0)
        }
    }

    /// `serialize_bytes`, as serde_json writes it: an array of numbers.
    fn serde_bytes_like() -> impl Serialize + std::fmt::Debug {
        #[derive(Debug)]
        struct B;
        impl Serialize for B {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&[0, 255, 7])
            }
        }
        B
    }
}
