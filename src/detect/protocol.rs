//! A proxy that breaks the WebSocket protocol (RFC 6455) on one of its
//! legs. A proxy relays frames as it got them, so a violation that shows on
//! one hop and not in what the other end sent on the other hop is the
//! proxy's own: an unmasked frame to the backend (5.1: the client of a
//! connection masks every frame, and the proxy is the client on its
//! upstream leg), a masked frame to the client (a server never masks), an
//! oversized control frame (5.5). Both hops must be in view.
//!
//! Kind: `proxy-protocol-violation`.

use serde_json::json;

use super::proxy::Proxy;
use super::{Config, Context, Detector, Finding, FindingKind, Severity, finding};
use crate::facts::{Fact, SessionEnd};
use crate::record::{CloseHow, Closer, Role};
use crate::time::Ts;

pub struct ProtocolViolation;

impl Detector for ProtocolViolation {
    fn new(_: &Config) -> ProtocolViolation {
        ProtocolViolation
    }

    fn kinds(&self) -> &'static [FindingKind] {
        &[FindingKind::ProxyProtocolViolation]
    }

    fn on_fact(&mut self, fact: &Fact<'_>, cx: &mut Context, out: &mut Vec<Finding>) {
        if let Fact::SessionEnded(s) = fact {
            out.extend(violation(s, cx.session_proxy(s)));
        }
    }
}

/// The `proxy-protocol-violation` finding for a finished session, if any.
fn violation(s: &SessionEnd<'_>, proxy: Proxy) -> Option<Finding> {
    let (c, u) = (s.client?, s.upstream?);
    let r = s.session;
    let unmasked = u.unmasked_client.saturating_sub(c.unmasked_client);
    let masked = c.masked_server.saturating_sub(u.masked_server);
    let oversized_up = u.oversized_control.saturating_sub(c.oversized_control);
    let oversized_down = c.oversized_control.saturating_sub(u.oversized_control);
    if unmasked == 0 && masked == 0 && oversized_up == 0 && oversized_down == 0 {
        return None;
    }
    let pname = proxy.name();
    // Both hops' activity is known: both flows are.
    let (Some(cflow), Some(uflow)) = (r.client_flow, r.upstream_flow) else { return None };
    let backend = uflow.dst;
    let mut what = Vec::new();
    if unmasked > 0 {
        what.push(format!(
            "sent {unmasked} unmasked frame(s) to the backend {backend} (RFC 6455 5.1: on its upstream leg the proxy is the client and must mask every frame; the client's own frames were masked)"
        ));
    }
    if masked > 0 {
        what.push(format!(
            "sent {masked} masked frame(s) to the client (RFC 6455 5.1: a server must not mask; the backend's frames were not masked)"
        ));
    }
    if oversized_up + oversized_down > 0 {
        what.push(format!(
            "sent {} control frame(s) longer than 125 bytes (RFC 6455 5.5) that the other end had not sent",
            oversized_up + oversized_down
        ));
    }
    // The proxy's own close (not relayed from either end) is usually what
    // carried it: caddy closes both legs with 1001 on a reload.
    let own_close = r.close.by == Some(Closer::Proxy) && r.close.how == CloseHow::CloseFrame;
    let up = r.hops.iter().find(|h| h.role == Role::Upstream);
    let backend_close = u.close_frame[1].as_ref();
    let mut msg = format!("{pname} {} on {}", what.join(" and "), r.path);
    if own_close {
        msg += &format!(
            "; it happened when {pname} closed the session itself (close {} to both legs, not relayed from either end)",
            r.close.code.map_or("without a code".to_string(), |c| c.to_string())
        );
    }
    if let Some(b) = backend_close.filter(|b| b.code == Some(1002)) {
        msg += &format!(
            "; the backend answered close 1002 (protocol error){}",
            if b.reason.is_empty() { String::new() } else { format!(" \"{}\"", b.reason) }
        );
    }
    let ts = [c.first_close, u.first_close].iter().flatten().map(|x| x.0).min().unwrap_or(Ts::from_secs_f64(r.end));
    let d = json!({
        "session": r.id,
        "handshake": r.handshake,
        "unmasked_to_backend": unmasked,
        "masked_to_client": masked,
        "oversized_control": oversized_up + oversized_down,
        "client_unmasked_frames": c.unmasked_client,
        "proxy_close": own_close.then(|| json!({
            "code": r.close.code,
            "to_client": r.hops.iter().find(|h| h.role == Role::Client).and_then(|h| h.close_frames.to_client),
            "to_backend": up.and_then(|h| h.close_frames.to_server),
        })),
        "backend_close": backend_close.map(|b| json!({"code": b.code, "reason": b.reason})),
        "hop": uflow,
        "hops": {"client": {"flow": cflow}, "upstream": {"flow": uflow}},
    });
    Some(finding(
        FindingKind::ProxyProtocolViolation,
        Severity::Error,
        ts,
        vec![cflow, uflow],
        Some(&r.path),
        msg,
        proxy,
        None,
        d,
    ))
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::super::testing::*;
    use super::ProtocolViolation;
    use crate::proto::activity::WsActivity;

    /// The proxy's own frames to the backend were unmasked; the client's
    /// were not.
    #[test]
    fn unmasked_frames_only_on_the_proxys_upstream_leg() {
        let s = session(1, "/ws", 0.0, 10.0, clean());
        let client = WsActivity::new(t(0.0));
        let mut upstream = WsActivity::new(t(0.0));
        upstream.unmasked_client = 1;
        let fs = One::new::<ProtocolViolation>(Config::default()).session(&s, Some(&client), Some(&upstream));
        assert_eq!(kinds(&fs), ["proxy-protocol-violation"]);
        assert!(fs[0].message.contains("sent 1 unmasked frame(s) to the backend 10.0.0.2:3000"), "{}", fs[0].message);
        // Both legs as the ends sent them: nothing.
        let fs = One::new::<ProtocolViolation>(Config::default()).session(&s, Some(&client), Some(&client));
        assert!(fs.is_empty());
    }
}
