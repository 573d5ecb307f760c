//! Caddy: named by its own `Server: Caddy` (sent beside the backend's).
//! Its reverse_proxy forwards upgrades by itself, and closes upgraded
//! connections itself when its configuration is reloaded.

use super::{FixContext, Product, generic};
use crate::record::FindingKind;

pub struct Caddy;

impl Product for Caddy {
    fn name(&self) -> &'static str {
        "caddy"
    }

    fn named_in(&self, l: &str) -> bool {
        l.contains("caddy")
    }

    fn fix(&self, kind: FindingKind, cx: &FixContext) -> Option<String> {
        use FindingKind as K;
        Some(match kind {
            K::UpgradeStripped => "caddy's reverse_proxy forwards upgrades by itself: remove any header_up rules that rewrite Connection or Upgrade".into(),
            K::ProxyProtocolViolation => "caddy closes upgraded connections itself when its config is reloaded, and 2.6 sends that close frame to the backend unmasked: upgrade caddy; from 2.7 on, stream_close_delay in reverse_proxy lets sessions outlive a reload; reload less often".into(),
            generic_fix![UpstreamHttp10, UpstreamConnectFailed, UpstreamTimeout, UpgradeFailed, ConnectionUpgradeOnPlain, IdleTimeoutClose, SocketioNoUpgrade, ForwardedProtoMissing, MassClose, HeartbeatRace, FalseUpgradeSuccess, H2WebsocketNotOffered] => return generic::fix(kind, cx),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cx, named, resp};
    use super::super::{Proxy, fix};
    use crate::record::FindingKind;

    /// caddy answers with its own Server beside the backend's.
    #[test]
    fn named_by_its_own_server_header() {
        let two = resp(&[("Server", "Caddy"), ("Server", "wstap-lab-backend")]);
        assert_eq!(named(None, Some(&two), None), Some("caddy"));
    }

    #[test]
    fn fixes_name_the_settings() {
        let p = Proxy::named("caddy").unwrap();
        let f = |k| fix(k, p, &cx()).unwrap();
        assert!(f(FindingKind::UpgradeStripped).contains("header_up"));
        assert!(f(FindingKind::ProxyProtocolViolation).contains("stream_close_delay"));
    }
}
