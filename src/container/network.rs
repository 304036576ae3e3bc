//! Bridge networks for containers ([`Network::Bridge`]): the glue between
//! [`Container::create`](crate::Container::create) /
//! [`ContainerHandle::remove`] and `dunnage-network`.
//!
//! The networks of a data root keep their state in `<root>/network/`
//! ([`STATE_DIR`]); their bridges, the host ends of the veth pairs and the
//! nftables rules live in the network namespace of the thread that calls
//! the library (the machine's own for a runtime, a test namespace entered
//! with `nsenter --net=...` or `setns(2)` on a thread for tests). Create
//! and remove must run in the same one.
//!
//! What create does for a bridge network, in order:
//! 1. before anything else is made, the network is checked (it exists;
//!    `dunnage0` is created on first use, like docker's `bridge`) and the
//!    published ports are checked against every other container's;
//! 2. once the process waits at its start gate in its new network
//!    namespace, the container is attached: the lease is recorded first
//!    (so a crash leaves a record that `remove` undoes), then the veth
//!    pair with the container's end as `eth0`, docker's MAC, the address,
//!    the default route and the published ports' DNAT;
//! 3. the container's `hosts` (docker's entries and `ADDRESS\tHOSTNAME`)
//!    and `resolv.conf` (the host's without loopback nameservers, or
//!    docker's fallbacks) are rewritten in place: they are bound into the
//!    container already.
//!
//! `remove` detaches the container after its process is gone: the veth
//! pair (if the kernel has not deleted it with the namespace), the lease
//! and the rules. A container that was never attached (a create that
//! crashed before step 2) detaches as a no-op. The attach keeps nothing of
//! the container's namespace (see [`Networks::detach`]), so the namespace
//! dies with the container's last process and the kernel deletes the pair
//! in the background: remove does not wait for it, and the host end may
//! be seen for a few milliseconds after remove returns.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;

pub use dunnage_network::{
    Attachment, DEFAULT_NETWORK, NetworkInfo, NetworkSpec, Networks, PortMapping, Protocol,
};

use crate::container::error::{Error, Result, io_err};
use crate::container::handle::ContainerHandle;
use crate::container::spec::{Network, Spec};
use crate::container::store::ContainerStore;

/// The directory below the data root with the networks' state.
pub const STATE_DIR: &str = "network";

impl ContainerStore {
    /// The bridge networks of this data root, managed in the network
    /// namespace the calling thread is in.
    pub fn networks(&self) -> Result<Networks> {
        let host = dunnage_network::netns::current()?;
        Ok(Networks::open(&self.root().join(STATE_DIR), host.as_fd())?)
    }
}

impl ContainerHandle {
    /// The container's place on its bridge network (docker's
    /// `NetworkSettings`: address, gateway, MAC, published ports); `None`
    /// for a container without a bridge network.
    pub fn network_attachment(&self) -> Result<Option<Attachment>> {
        let Network::Bridge { name, .. } = &self.spec.network else {
            return Ok(None);
        };
        match self.store.networks()?.attachment(name, &self.spec.id) {
            Ok(a) => Ok(Some(a)),
            // Created but not attached yet, or detached by a remove that
            // failed later: no settings to show.
            Err(dunnage_network::Error::NotAttached { .. })
            | Err(dunnage_network::Error::NetworkNotFound(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
}

/// Step 1: refuse a bridge network that does not exist or ports that are
/// published already, before anything of the container is made.
pub(crate) fn check(store: &ContainerStore, spec: &Spec) -> Result<()> {
    let Network::Bridge { name, ports } = &spec.network else {
        return Ok(());
    };
    let nets = store.networks()?;
    if name == DEFAULT_NETWORK {
        nets.ensure_default()?;
    }
    nets.check_attach(name, &spec.id, ports)?;
    Ok(())
}

/// Steps 2 and 3: attach the container whose init is `pid` (waiting at its
/// start gate in its own network namespace) and write its `hosts` and
/// `resolv.conf` in `dir`. `None` for other networks.
pub(crate) fn attach(
    store: &ContainerStore,
    spec: &Spec,
    dir: &Path,
    pid: i32,
) -> Result<Option<Attachment>> {
    let Network::Bridge { name, ports } = &spec.network else {
        return Ok(None);
    };
    let nets = store.networks()?;
    let ns_path = format!("/proc/{pid}/ns/net");
    let ns = dunnage_network::netns::open(Path::new(&ns_path))?;
    let a = nets.attach(name, &spec.id, ns.as_fd(), ports)?;
    let files = [
        (
            "hosts",
            dunnage_network::etc::hosts(a.address, &[spec.hostname.as_str()]),
        ),
        (
            "resolv.conf",
            dunnage_network::etc::resolv_conf(
                &dunnage_network::etc::read_host_resolv_conf(),
                false,
            ),
        ),
    ];
    let written = files
        .iter()
        .try_for_each(|(file, text)| rewrite(&dir.join(file), text));
    if let Err(e) = written {
        let _ = nets.detach(name, &spec.id);
        return Err(e);
    }
    Ok(Some(a))
}

/// Undo [`attach`]: veth pair, lease, rules. Nothing to do when the
/// container was never attached or the network is gone.
pub(crate) fn detach(store: &ContainerStore, spec: &Spec) -> Result<()> {
    let Network::Bridge { name, .. } = &spec.network else {
        return Ok(());
    };
    match store.networks()?.detach(name, &spec.id) {
        Ok(())
        | Err(dunnage_network::Error::NotAttached { .. })
        | Err(dunnage_network::Error::NetworkNotFound(_)) => Ok(()),
        Err(e) => Err(Error::Network(e)),
    }
}

/// Replace the contents of `path` keeping its inode: it is bind-mounted
/// into the container, and a new file would not show there.
fn rewrite(path: &Path, text: &str) -> Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(io_err("write", path))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_bridge_network_round_trips_through_the_stored_spec() {
        let net = Network::Bridge {
            name: "web".into(),
            ports: vec!["127.0.0.1:8080:80/udp".parse().unwrap()],
        };
        let json = serde_json::to_string(&net).unwrap();
        assert_eq!(serde_json::from_str::<Network>(&json).unwrap(), net);
        // Ports may be left out; other shapes are refused, not guessed.
        let bare: Network = serde_json::from_str(r#"{"bridge":{"name":"web"}}"#).unwrap();
        assert_eq!(
            bare,
            Network::Bridge {
                name: "web".into(),
                ports: vec![]
            }
        );
        for bad in [
            r#"{"bridge":{}}"#,
            r#"{"bridge":{"name":"web","ports":["8080:80"]}}"#,
            r#"{"bridge":"web"}"#,
        ] {
            assert!(serde_json::from_str::<Network>(bad).is_err(), "{bad}");
        }
        assert!(net.has_own_namespace() && Network::None.has_own_namespace());
        assert!(!Network::Host.has_own_namespace());
    }
}
