//! Cipher suites, key schedules and record protection, all on RustCrypto
//! crates (aes-gcm, chacha20poly1305, hkdf, hmac, sha2): this file only
//! arranges their inputs as the RFCs say.
//!
//! - TLS 1.3 (RFC 8446 7.1, 7.3, 5.2): traffic keys and IVs from a traffic
//!   secret with HKDF-Expand-Label; the next secret after a KeyUpdate;
//!   nonce = IV xor sequence number; the record header is the AAD.
//! - TLS 1.2 (RFC 5246 5, 6.3, 6.2.3.3; RFC 5288; RFC 7905): the key block
//!   from the master secret with the PRF (P_SHA256 / P_SHA384, i.e. HMAC
//!   chained as RFC 5246 section 5 describes); AES-GCM's explicit nonce,
//!   ChaCha20-Poly1305's IV xor sequence number; AAD = seq, type, version,
//!   plaintext length.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes128Gcm, Aes256Gcm};
use chacha20poly1305::ChaCha20Poly1305;
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::{Sha256, Sha384};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aead {
    Aes128Gcm,
    Aes256Gcm,
    ChaCha20Poly1305,
}

impl Aead {
    pub fn key_len(self) -> usize {
        match self {
            Aead::Aes128Gcm => 16,
            Aead::Aes256Gcm | Aead::ChaCha20Poly1305 => 32,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha256,
    Sha384,
}

impl HashAlg {
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
        }
    }
}

/// A cipher suite wstap can decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    pub id: u16,
    pub aead: Aead,
    pub hash: HashAlg,
    pub tls13: bool,
}

const fn s(id: u16, aead: Aead, hash: HashAlg, tls13: bool) -> Suite {
    Suite { id, aead, hash, tls13 }
}

/// Every suite that is decrypted: the TLS 1.3 AEAD suites but CCM, and the
/// TLS 1.2 (EC)DHE/RSA suites with AES-GCM or ChaCha20-Poly1305.
pub const SUPPORTED: &[Suite] = &[
    s(0x1301, Aead::Aes128Gcm, HashAlg::Sha256, true),
    s(0x1302, Aead::Aes256Gcm, HashAlg::Sha384, true),
    s(0x1303, Aead::ChaCha20Poly1305, HashAlg::Sha256, true),
    s(0xc02b, Aead::Aes128Gcm, HashAlg::Sha256, false),
    s(0xc02c, Aead::Aes256Gcm, HashAlg::Sha384, false),
    s(0xc02f, Aead::Aes128Gcm, HashAlg::Sha256, false),
    s(0xc030, Aead::Aes256Gcm, HashAlg::Sha384, false),
    s(0x009c, Aead::Aes128Gcm, HashAlg::Sha256, false),
    s(0x009d, Aead::Aes256Gcm, HashAlg::Sha384, false),
    s(0x009e, Aead::Aes128Gcm, HashAlg::Sha256, false),
    s(0x009f, Aead::Aes256Gcm, HashAlg::Sha384, false),
    s(0xcca8, Aead::ChaCha20Poly1305, HashAlg::Sha256, false),
    s(0xcca9, Aead::ChaCha20Poly1305, HashAlg::Sha256, false),
    s(0xccaa, Aead::ChaCha20Poly1305, HashAlg::Sha256, false),
];

pub fn suite(id: u16) -> Option<Suite> {
    SUPPORTED.iter().copied().find(|s| s.id == id)
}

/// The IANA name of a suite (the ones seen in practice; others as hex).
pub fn suite_name(id: u16) -> String {
    let n = match id {
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0x1304 => "TLS_AES_128_CCM_SHA256",
        0x1305 => "TLS_AES_128_CCM_8_SHA256",
        0xc02b => "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        0xc02c => "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        0xc02f => "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        0xc030 => "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
        0x009c => "TLS_RSA_WITH_AES_128_GCM_SHA256",
        0x009d => "TLS_RSA_WITH_AES_256_GCM_SHA384",
        0x009e => "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256",
        0x009f => "TLS_DHE_RSA_WITH_AES_256_GCM_SHA384",
        0xcca8 => "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0xcca9 => "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
        0xccaa => "TLS_DHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
        0x002f => "TLS_RSA_WITH_AES_128_CBC_SHA",
        0x0035 => "TLS_RSA_WITH_AES_256_CBC_SHA",
        0x003c => "TLS_RSA_WITH_AES_128_CBC_SHA256",
        0x003d => "TLS_RSA_WITH_AES_256_CBC_SHA256",
        0x000a => "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        0xc009 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        0xc00a => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        0xc013 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        0xc014 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        0xc023 => "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        0xc024 => "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA384",
        0xc027 => "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
        0xc028 => "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA384",
        0xc09c => "TLS_RSA_WITH_AES_128_CCM",
        0xc0ac => "TLS_ECDHE_ECDSA_WITH_AES_128_CCM",
        _ => return format!("0x{id:04x}"),
    };
    n.to_string()
}

/// HKDF-Expand-Label (RFC 8446 7.1) with an empty context.
pub fn expand_label(hash: HashAlg, secret: &[u8], label: &str, len: usize) -> Option<Vec<u8>> {
    let mut info = Vec::with_capacity(4 + 6 + label.len());
    info.extend_from_slice(&(len as u16).to_be_bytes());
    info.push((6 + label.len()) as u8);
    info.extend_from_slice(b"tls13 ");
    info.extend_from_slice(label.as_bytes());
    info.push(0);
    let mut out = vec![0; len];
    match hash {
        HashAlg::Sha256 => Hkdf::<Sha256>::from_prk(secret).ok()?.expand(&info, &mut out).ok()?,
        HashAlg::Sha384 => Hkdf::<Sha384>::from_prk(secret).ok()?.expand(&info, &mut out).ok()?,
    }
    Some(out)
}

/// The TLS 1.2 PRF: P_hash(secret, label + seed) (RFC 5246 section 5).
pub fn prf(hash: HashAlg, secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Option<Vec<u8>> {
    match hash {
        HashAlg::Sha256 => p_hash::<Hmac<Sha256>>(secret, label, seed, len),
        HashAlg::Sha384 => p_hash::<Hmac<Sha384>>(secret, label, seed, len),
    }
}

fn p_hash<M: Mac + KeyInit + Clone>(secret: &[u8], label: &[u8], seed: &[u8], len: usize) -> Option<Vec<u8>> {
    let mac = <M as KeyInit>::new_from_slice(secret).ok()?;
    let mut out = Vec::with_capacity(len + 64);
    // A(1) = HMAC(secret, label + seed)
    let mut a = {
        let mut m = mac.clone();
        m.update(label);
        m.update(seed);
        m.finalize().into_bytes().to_vec()
    };
    while out.len() < len {
        let mut m = mac.clone();
        m.update(&a);
        m.update(label);
        m.update(seed);
        out.extend_from_slice(&m.finalize().into_bytes());
        let mut m = mac.clone();
        m.update(&a);
        a = m.finalize().into_bytes().to_vec();
    }
    out.truncate(len);
    Some(out)
}

enum Cipher {
    A128(Box<Aes128Gcm>),
    A256(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

/// Why a record did not decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenError {
    /// Shorter than its explicit nonce and tag.
    Short,
    /// The tag did not verify (wrong key, wrong sequence, damaged record).
    Auth,
}

/// One direction's record protection: key, IV, sequence number.
pub struct RecordKey {
    cipher: Cipher,
    iv: [u8; 12],
    /// TLS 1.2 AES-GCM: 4 bytes of implicit salt, 8 explicit in each record.
    explicit_nonce: bool,
    tls13: bool,
    pub seq: u64,
}

impl std::fmt::Debug for RecordKey {
    // Never prints key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordKey {{ tls13: {}, seq: {} }}", self.tls13, self.seq)
    }
}

const TAG: usize = 16;

impl RecordKey {
    pub fn new(aead: Aead, key: &[u8], iv: &[u8], tls13: bool) -> Option<RecordKey> {
        let cipher = match aead {
            Aead::Aes128Gcm => Cipher::A128(Box::new(Aes128Gcm::new_from_slice(key).ok()?)),
            Aead::Aes256Gcm => Cipher::A256(Box::new(Aes256Gcm::new_from_slice(key).ok()?)),
            Aead::ChaCha20Poly1305 => Cipher::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).ok()?)),
        };
        let explicit_nonce = !tls13 && aead != Aead::ChaCha20Poly1305;
        let mut v = [0u8; 12];
        if explicit_nonce {
            v[..4].copy_from_slice(iv.get(..4)?);
        } else {
            v.copy_from_slice(iv.get(..12)?);
        }
        Some(RecordKey { cipher, iv: v, explicit_nonce, tls13, seq: 0 })
    }

    /// TLS 1.3 keys for a traffic secret.
    pub fn tls13(suite: Suite, secret: &[u8]) -> Option<RecordKey> {
        let key = expand_label(suite.hash, secret, "key", suite.aead.key_len())?;
        let iv = expand_label(suite.hash, secret, "iv", 12)?;
        RecordKey::new(suite.aead, &key, &iv, true)
    }

    /// Decrypts one record in place (`hdr` is its 5-byte header, `body`
    /// its fragment) and returns the plaintext's range in `body`. The
    /// sequence number advances only on success.
    pub fn open(&mut self, hdr: &[u8; 5], body: &mut [u8]) -> Result<std::ops::Range<usize>, OpenError> {
        let (start, nonce) = if self.explicit_nonce {
            if body.len() < 8 + TAG {
                return Err(OpenError::Short);
            }
            let mut n = self.iv;
            n[4..].copy_from_slice(&body[..8]);
            (8, n)
        } else {
            if body.len() < TAG {
                return Err(OpenError::Short);
            }
            let mut n = self.iv;
            for (i, b) in self.seq.to_be_bytes().iter().enumerate() {
                n[4 + i] ^= b;
            }
            (0, n)
        };
        let end = body.len() - TAG;
        let mut aad13 = [0u8; 5];
        let mut aad12 = [0u8; 13];
        let aad: &[u8] = if self.tls13 {
            aad13.copy_from_slice(hdr);
            &aad13
        } else {
            aad12[..8].copy_from_slice(&self.seq.to_be_bytes());
            aad12[8..11].copy_from_slice(&hdr[..3]);
            aad12[11..].copy_from_slice(&((end - start) as u16).to_be_bytes());
            &aad12
        };
        let (msg, tag) = body[start..].split_at_mut(end - start);
        let ok = match &self.cipher {
            Cipher::A128(c) => c.decrypt_inout_detached(&nonce.into(), aad, msg.into(), (&*tag).try_into().unwrap()),
            Cipher::A256(c) => c.decrypt_inout_detached(&nonce.into(), aad, msg.into(), (&*tag).try_into().unwrap()),
            Cipher::ChaCha(c) => c.decrypt_inout_detached(&nonce.into(), aad, msg.into(), (&*tag).try_into().unwrap()),
        };
        match ok {
            Ok(()) => {
                self.seq = self.seq.wrapping_add(1);
                Ok(start..end)
            }
            Err(_) => Err(OpenError::Auth),
        }
    }
}

impl RecordKey {
    /// Protects one record, as a peer would (TLS 1.3: `ty` goes inside and
    /// the outer type is application_data). For tests and the benchmark's
    /// generated captures; the sequence number advances.
    pub fn seal(&mut self, ty: u8, plain: &[u8]) -> Vec<u8> {
        let mut nonce = self.iv;
        let mut body = Vec::with_capacity(plain.len() + 8 + 1 + TAG);
        if self.explicit_nonce {
            nonce[4..].copy_from_slice(&self.seq.to_be_bytes());
            body.extend_from_slice(&self.seq.to_be_bytes());
        } else {
            for (i, b) in self.seq.to_be_bytes().iter().enumerate() {
                nonce[4 + i] ^= b;
            }
        }
        let start = body.len();
        body.extend_from_slice(plain);
        let outer = if self.tls13 {
            body.push(ty);
            23
        } else {
            ty
        };
        let ct_len = body.len() - start;
        let mut hdr = [outer, 3, 3, 0, 0];
        hdr[3..].copy_from_slice(&((body.len() + TAG) as u16).to_be_bytes());
        let mut aad12 = [0u8; 13];
        let aad: &[u8] = if self.tls13 {
            &hdr
        } else {
            aad12[..8].copy_from_slice(&self.seq.to_be_bytes());
            aad12[8..11].copy_from_slice(&hdr[..3]);
            aad12[11..].copy_from_slice(&(ct_len as u16).to_be_bytes());
            &aad12
        };
        let msg = &mut body[start..];
        let tag = match &self.cipher {
            Cipher::A128(c) => c.encrypt_inout_detached(&nonce.into(), aad, msg.into()).map(|t| t.to_vec()),
            Cipher::A256(c) => c.encrypt_inout_detached(&nonce.into(), aad, msg.into()).map(|t| t.to_vec()),
            Cipher::ChaCha(c) => c.encrypt_inout_detached(&nonce.into(), aad, msg.into()).map(|t| t.to_vec()),
        }
        .unwrap_or_default();
        body.extend_from_slice(&tag);
        self.seq = self.seq.wrapping_add(1);
        let mut rec = hdr.to_vec();
        rec.extend_from_slice(&body);
        rec
    }
}

/// TLS 1.2: the client's and the server's record keys from the master
/// secret (RFC 5246 6.3; AEAD suites have no MAC keys).
pub fn tls12_keys(suite: Suite, master: &[u8], client_random: &[u8], server_random: &[u8]) -> Option<[RecordKey; 2]> {
    let klen = suite.aead.key_len();
    let ivlen = if suite.aead == Aead::ChaCha20Poly1305 { 12 } else { 4 };
    let mut seed = Vec::with_capacity(64);
    seed.extend_from_slice(server_random);
    seed.extend_from_slice(client_random);
    let kb = prf(suite.hash, master, b"key expansion", &seed, 2 * (klen + ivlen))?;
    let (ck, rest) = kb.split_at(klen);
    let (sk, rest) = rest.split_at(klen);
    let (civ, siv) = rest.split_at(ivlen);
    Some([RecordKey::new(suite.aead, ck, civ, false)?, RecordKey::new(suite.aead, sk, siv, false)?])
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use aes_gcm::aead::AeadInOut;

    pub fn h(s: &str) -> Vec<u8> {
        let d: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
        d.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
    }

    // RFC 8448 section 3 (Simple 1-RTT Handshake), TLS_AES_128_GCM_SHA256.
    pub const C_HS: &str =
        "b3 ed db 12 6e 06 7f 35 a7 80 b3 ab f4 5e 2d 8f 3b 1a 95 07 38 f5 2e 96 00 74 6a 0e 27 a5 5a 21";
    pub const S_HS: &str =
        "b6 7b 7d 69 0c c1 6c 4e 75 e5 42 13 cb 2d 37 b4 e9 c9 12 bc de d9 10 5d 42 be fd 59 d3 91 ad 38";
    pub const C_AP: &str =
        "9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 04 a5";
    pub const S_AP: &str =
        "a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 16 43";
    /// The client's Finished under its handshake key.
    pub const C_FIN_REC: &str =
        "17 03 03 00 35 75 ec 4d c2 38 cc e6 0b 29 80 44 a7 1e 21 9c 56 cc 77 b0 51 7f e9 b9 3c 7a
        4b fc 44 d8 7f 38 f8 03 38 ac 98 fc 46 de b3 84 bd 1c ae ac ab 68 67 d7 26 c4 05 46";
    /// 50 bytes (00 01 .. 31) from the client, first record under its application key.
    pub const C_APP_REC: &str = "17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea 42 f9 14 aa 66 bc
        ab 3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd 1e 3d ea e6 3a ee bb 21 69
        49 15 e4";
    /// The same 50 bytes from the server, its second record (after a NewSessionTicket).
    pub const S_APP_REC: &str = "17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc 32 25 d0 5f 82 aa
        1b 36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 ab f3 32 54 0d d0 32 e1 67
        c2 95 5d";

    fn suite13() -> Suite {
        suite(0x1301).unwrap()
    }

    #[test]
    fn rfc8448_traffic_keys() {
        let s = suite13();
        assert_eq!(
            expand_label(s.hash, &h(S_HS), "key", 16).unwrap(),
            h("3f ce 51 60 09 c2 17 27 d0 f2 e4 e8 6e e4 03 bc")
        );
        assert_eq!(expand_label(s.hash, &h(S_HS), "iv", 12).unwrap(), h("5d 31 3e b2 67 12 76 ee 13 00 0b 30"));
        assert_eq!(
            expand_label(s.hash, &h(C_AP), "key", 16).unwrap(),
            h("17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51")
        );
        assert_eq!(expand_label(s.hash, &h(C_AP), "iv", 12).unwrap(), h("5b 78 92 3d ee 08 57 90 33 e5 23 d9"));
        assert_eq!(
            expand_label(s.hash, &h(S_AP), "key", 16).unwrap(),
            h("9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56")
        );
        assert_eq!(
            expand_label(s.hash, &h(C_HS), "key", 16).unwrap(),
            h("db fa a6 93 d1 76 2c 5b 66 6a f5 d9 50 25 8d 01")
        );
    }

    fn open(k: &mut RecordKey, rec: &[u8]) -> Result<Vec<u8>, OpenError> {
        let hdr: [u8; 5] = rec[..5].try_into().unwrap();
        let mut body = rec[5..].to_vec();
        let r = k.open(&hdr, &mut body)?;
        Ok(body[r].to_vec())
    }

    #[test]
    fn rfc8448_records_decrypt() {
        let payload: Vec<u8> = (0u8..50).collect();
        let mut k = RecordKey::tls13(suite13(), &h(C_AP)).unwrap();
        let p = open(&mut k, &h(C_APP_REC)).unwrap();
        assert_eq!(&p[..50], &payload[..]);
        assert_eq!(p[50], 23, "inner content type application_data");
        assert_eq!(k.seq, 1);
        // The server's record is its second under the key.
        let mut k = RecordKey::tls13(suite13(), &h(S_AP)).unwrap();
        assert_eq!(open(&mut k, &h(S_APP_REC)), Err(OpenError::Auth), "wrong sequence number");
        assert_eq!(k.seq, 0);
        k.seq = 1;
        assert_eq!(&open(&mut k, &h(S_APP_REC)).unwrap()[..50], &payload[..]);
        // The client's Finished under its handshake key: a Finished message.
        let mut k = RecordKey::tls13(suite13(), &h(C_HS)).unwrap();
        let p = open(&mut k, &h(C_FIN_REC)).unwrap();
        assert_eq!(&p[..4], &[0x14, 0, 0, 0x20]);
        assert_eq!(*p.last().unwrap(), 22);
        // A flipped bit fails authentication.
        let mut rec = h(C_APP_REC);
        rec[20] ^= 1;
        let mut k = RecordKey::tls13(suite13(), &h(C_AP)).unwrap();
        assert_eq!(open(&mut k, &rec), Err(OpenError::Auth));
        assert_eq!(open(&mut k, &h("17 03 03 00 03 01 02 03")), Err(OpenError::Short));
    }

    #[test]
    fn tls12_prf_published_vector() {
        let out = prf(
            HashAlg::Sha256,
            &h("9b be 43 6b a9 40 f0 17 b1 76 52 84 9a 71 db 35"),
            b"test label",
            &h("a0 ba 9f 93 6c da 31 18 27 a6 f7 96 ff d5 19 8c"),
            100,
        )
        .unwrap();
        assert_eq!(
            out,
            h("e3 f2 29 ba 72 7b e1 7b 8d 12 26 20 55 7c d4 53 c2 aa b2 1d 07 c3 d4 95 32 9b 52 d4 e6 1e db 5a
               6b 30 17 91 e9 0d 35 c9 c9 a4 6b 4e 14 ba f9 af 0f a0 22 f7 07 7d ef 17 ab fd 37 97 c0 56 4b ab
               4f bc 91 66 6e 9d ef 9b 97 fc e3 4f 79 67 89 ba a4 80 82 d1 22 ee 42 c5 a7 2e 5a 51 10 ff f7 01
               87 34 7b 66")
        );
    }

    /// Seals a TLS 1.2 record the way a peer would (the crate encrypts;
    /// the test only frames), so that `open` is checked both ways.
    pub fn seal12(aead: Aead, key: &[u8], iv: &[u8], seq: u64, ty: u8, plain: &[u8]) -> Vec<u8> {
        let explicit = aead != Aead::ChaCha20Poly1305;
        let mut nonce = [0u8; 12];
        let mut body = Vec::new();
        if explicit {
            nonce[..4].copy_from_slice(&iv[..4]);
            nonce[4..].copy_from_slice(&seq.to_be_bytes());
            body.extend_from_slice(&seq.to_be_bytes());
        } else {
            nonce.copy_from_slice(&iv[..12]);
            for (i, b) in seq.to_be_bytes().iter().enumerate() {
                nonce[4 + i] ^= b;
            }
        }
        let mut aad = seq.to_be_bytes().to_vec();
        aad.extend_from_slice(&[ty, 3, 3]);
        aad.extend_from_slice(&(plain.len() as u16).to_be_bytes());
        let mut buf = plain.to_vec();
        let tag = match aead {
            Aead::Aes128Gcm => Aes128Gcm::new_from_slice(key)
                .unwrap()
                .encrypt_inout_detached(&nonce.into(), &aad, buf.as_mut_slice().into())
                .unwrap()
                .to_vec(),
            Aead::Aes256Gcm => Aes256Gcm::new_from_slice(key)
                .unwrap()
                .encrypt_inout_detached(&nonce.into(), &aad, buf.as_mut_slice().into())
                .unwrap()
                .to_vec(),
            Aead::ChaCha20Poly1305 => ChaCha20Poly1305::new_from_slice(key)
                .unwrap()
                .encrypt_inout_detached(&nonce.into(), &aad, buf.as_mut_slice().into())
                .unwrap()
                .to_vec(),
        };
        body.extend_from_slice(&buf);
        body.extend_from_slice(&tag);
        let mut rec = vec![ty, 3, 3];
        rec.extend_from_slice(&(body.len() as u16).to_be_bytes());
        rec.extend_from_slice(&body);
        rec
    }

    #[test]
    fn tls12_records_round_trip_for_every_aead() {
        for id in [0xc02f, 0xc030, 0xcca8] {
            let s = suite(id).unwrap();
            let master = [7u8; 48];
            let (cr, sr) = ([1u8; 32], [2u8; 32]);
            let [mut c, _] = tls12_keys(s, &master, &cr, &sr).unwrap();
            // The same key block, computed here, seals what `open` reads.
            let klen = s.aead.key_len();
            let ivlen = if s.aead == Aead::ChaCha20Poly1305 { 12 } else { 4 };
            let mut seed = sr.to_vec();
            seed.extend_from_slice(&cr);
            let kb = prf(s.hash, &master, b"key expansion", &seed, 2 * (klen + ivlen)).unwrap();
            let (key, iv) = (&kb[..klen], &kb[2 * klen..2 * klen + ivlen]);
            for seq in 0..3 {
                let rec = seal12(s.aead, key, iv, seq, 23, b"GET / HTTP/1.1\r\n\r\n");
                assert_eq!(open(&mut c, &rec).unwrap(), b"GET / HTTP/1.1\r\n\r\n", "suite {id:04x} seq {seq}");
            }
            let rec = seal12(s.aead, key, iv, 9, 23, b"x");
            assert_eq!(open(&mut c, &rec), Err(OpenError::Auth), "suite {id:04x}: wrong sequence");
        }
    }
}
