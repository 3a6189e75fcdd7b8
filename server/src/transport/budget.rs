//! The descriptor budget: how the process's file descriptors are shared between the surfaces
//! that accept connections, so that a flood on one (1,100 idle HTTP connections in issue 15)
//! cannot take the descriptors another (new TLS logins) needs.
//!
//! The rule (docs/security.md, "HTTP connections and descriptors"):
//!
//! - At start the soft `RLIMIT_NOFILE` is raised to the hard one (at most 2^20), and the budget
//!   is `nofile - open - limits.fd_reserve`: `open` the descriptors open once the store is
//!   open and every listener bound, the reserve for what the server opens later (log segments,
//!   store files, files streamed to and from disk, the search index).
//! - The HTTP surfaces (public, private, HTTPS, the dialects' roots) together get at most a
//!   quarter of the budget, and at most `http.max_connections` per listener.
//! - The binary transports (TCP, TLS, QUIC, and WebSocket sessions once upgraded) get the rest,
//!   at most `limits.max_connections`.
//!
//! So the two never take more than the budget between them, and each refuses at its own cap
//! while the other still has descriptors. A limit too low to leave a budget of [`MIN_BUDGET`]
//! is said loudly at start; the caps are then the configured ones alone, and running out of
//! descriptors is survived by the accept loops' back-off (transport/tcp.rs).

use crate::config::Config;

/// Smallest budget worth dividing; below it the configured caps apply alone.
pub const MIN_BUDGET: usize = 64;

/// The highest soft limit asked for when the hard one is unlimited.
const NOFILE_CEILING: u64 = 1 << 20;

/// How many connections each side may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Connections of the binary transports and WebSocket sessions.
    pub im: usize,
    /// HTTP connections over all HTTP listeners.
    pub http: usize,
}

/// The inputs of [`divide`], as found at start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Descriptors {
    /// The soft `RLIMIT_NOFILE` (after raising it).
    pub nofile: usize,
    /// Descriptors open at start.
    pub open: usize,
}

impl Descriptors {
    /// Raises the soft descriptor limit to the hard one and counts what is open.
    pub fn at_start() -> Descriptors {
        use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
        let limit = getrlimit(Resource::Nofile);
        let hard = limit.maximum.unwrap_or(NOFILE_CEILING).min(NOFILE_CEILING);
        let mut soft = limit.current.unwrap_or(hard);
        if soft < hard {
            let raised = Rlimit {
                current: Some(hard),
                maximum: limit.maximum,
            };
            match setrlimit(Resource::Nofile, raised) {
                Ok(()) => soft = hard,
                Err(e) => tracing::warn!(soft, hard, error = %e, "cannot raise RLIMIT_NOFILE"),
            }
        }
        // /proc is Linux's; elsewhere count a generous guess (listeners, store, log).
        let open = std::fs::read_dir("/proc/self/fd").map_or(64, |d| d.count());
        Descriptors {
            nofile: usize::try_from(soft).unwrap_or(usize::MAX),
            open,
        }
    }
}

/// Divides the descriptors between the sides for `cfg` with `http_listeners` HTTP listeners
/// (see the module docs). `None` when too few are left to budget.
pub fn divide(cfg: &Config, fds: Descriptors, http_listeners: usize) -> (Budget, Option<usize>) {
    let configured_http = cfg.http.max_connections.saturating_mul(http_listeners);
    let im = cfg.limits.max_connections;
    let budget = fds
        .nofile
        .saturating_sub(fds.open)
        .saturating_sub(cfg.limits.fd_reserve);
    if budget < MIN_BUDGET {
        let unbudgeted = Budget {
            im,
            http: configured_http,
        };
        return (unbudgeted, None);
    }
    let http = configured_http.min(budget / 4);
    let im = im.min(budget - http);
    (Budget { im, http }, Some(budget))
}

/// [`Descriptors::at_start`] and [`divide`], logged.
pub fn at_start(cfg: &Config, http_listeners: usize) -> Budget {
    let fds = Descriptors::at_start();
    let (budget, total) = divide(cfg, fds, http_listeners);
    match total {
        Some(total) => tracing::info!(
            nofile = fds.nofile,
            open = fds.open,
            reserve = cfg.limits.fd_reserve,
            budget = total,
            binary_and_websocket = budget.im,
            http = budget.http,
            "descriptor budget: connections of the binary transports and of HTTP each stay \
             within their share"
        ),
        None => tracing::warn!(
            nofile = fds.nofile,
            open = fds.open,
            reserve = cfg.limits.fd_reserve,
            binary_and_websocket = budget.im,
            http = budget.http,
            "the descriptor limit (RLIMIT_NOFILE) leaves no room for a connection budget; \
             raise it (ulimit -n) or lower limits.fd_reserve: until then only the configured \
             caps apply, and connections beyond the limit wait for descriptors"
        ),
    }
    budget
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(max_connections: usize, http_max: usize, reserve: usize) -> Config {
        let mut cfg = Config::default();
        cfg.limits.max_connections = max_connections;
        cfg.http.max_connections = http_max;
        cfg.limits.fd_reserve = reserve;
        cfg
    }

    #[test]
    fn http_gets_at_most_a_quarter_and_the_sides_stay_within_the_budget() {
        let fds = Descriptors {
            nofile: 1024,
            open: 60,
        };
        let (b, total) = divide(&cfg(100_000, 4096, 164), fds, 2);
        assert_eq!(total, Some(800));
        assert_eq!(b, Budget { im: 600, http: 200 });
        // Small configured caps are kept.
        let (b, _) = divide(&cfg(100, 10, 164), fds, 2);
        assert_eq!(b, Budget { im: 100, http: 20 });
        // No HTTP listener: the binary transports may use it all.
        let (b, _) = divide(&cfg(100_000, 4096, 164), fds, 0);
        assert_eq!(b, Budget { im: 800, http: 0 });
    }

    #[test]
    fn too_small_a_limit_leaves_the_configured_caps() {
        let fds = Descriptors {
            nofile: 100,
            open: 60,
        };
        let (b, total) = divide(&cfg(1000, 50, 256), fds, 1);
        assert_eq!(total, None);
        assert_eq!(b, Budget { im: 1000, http: 50 });
    }
}
