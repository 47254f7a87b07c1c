//! The one list of actions: wire name → handler.
//!
//! Adding an action touches this list and one handler file. The list is a macro because it has
//! over thirty entries and three views of it (enum, name lookup, dispatch) must never disagree.

use super::error::ApiError;
use super::handlers::{alb, binding, clb, ssl, unet};
use super::params::Params;
use super::{Ctx, Reply};

macro_rules! actions {
    ($($name:ident => $handler:path,)*) => {
        /// Every action certbind serves.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[allow(clippy::upper_case_acronyms)]
        pub enum Action { $($name,)* }

        impl Action {
            /// Every action, in list order.
            pub const ALL: &'static [Action] = &[$(Action::$name,)*];

            pub fn parse(name: &str) -> Option<Action> {
                match name {
                    $(stringify!($name) => Some(Action::$name),)*
                    _ => None,
                }
            }

            pub fn name(self) -> &'static str {
                match self {
                    $(Action::$name => stringify!($name),)*
                }
            }

            pub async fn run(self, ctx: &Ctx, p: &Params) -> Result<Reply, ApiError> {
                match self {
                    $(Action::$name => $handler(ctx, p).await,)*
                }
            }
        }
    };
}

actions! {
    // Certificates (spec §5.1).
    CreateSSL => ssl::create_ssl,
    DescribeSSL => ssl::describe_ssl,
    DescribeSSLV2 => ssl::describe_ssl_v2,
    UpdateSSLAttribute => ssl::update_ssl_attribute,
    DeleteSSL => ssl::delete_ssl,
    // Bindings (spec §4.2–4.4).
    BindSSL => binding::bind_ssl,
    UnbindSSL => binding::unbind_ssl,
    UpdateSSLBinding => binding::update_ssl_binding,
    AddSSLBinding => binding::add_ssl_binding,
    DeleteSSLBinding => binding::delete_ssl_binding,
    // CLB (spec §5.2).
    CreateULB => clb::create_ulb,
    DescribeULB => clb::describe_ulb,
    DescribeULBSimple => clb::describe_ulb_simple,
    UpdateULBAttribute => clb::update_ulb_attribute,
    DeleteULB => clb::delete_ulb,
    CreateVServer => clb::create_vserver,
    DescribeVServer => clb::describe_vserver,
    UpdateVServerAttribute => clb::update_vserver_attribute,
    DeleteVServer => clb::delete_vserver,
    AllocateBackend => clb::allocate_backend,
    ReleaseBackend => clb::release_backend,
    UpdateBackendAttribute => clb::update_backend_attribute,
    // ALB (spec §5.3).
    CreateLoadBalancer => alb::create_load_balancer,
    DescribeLoadBalancers => alb::describe_load_balancers,
    UpdateLoadBalancerAttribute => alb::update_load_balancer_attribute,
    DeleteLoadBalancer => alb::delete_load_balancer,
    CreateListener => alb::create_listener,
    DescribeListeners => alb::describe_listeners,
    UpdateListenerAttribute => alb::update_listener_attribute,
    DeleteListener => alb::delete_listener,
    AddTargets => alb::add_targets,
    RemoveTargets => alb::remove_targets,
    UpdateTargetsAttribute => alb::update_targets_attribute,
    // UNet, only what terraform's `ucloud_lb` read needs (spec §6.1).
    DescribeFirewall => unet::describe_firewall,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for action in Action::ALL {
            assert_eq!(Action::parse(action.name()), Some(*action));
        }
        assert_eq!(Action::parse("describessl"), None);
    }
}
