//! Networks: create, remove, inspect, list; attach and detach containers.
//!
//! A [`Networks`] is the state directory plus the network namespace that
//! stands for "the host": the bridges, the host ends of the veth pairs and
//! the nftables rules live there. Every call takes the state lock (see
//! [`crate::store`]), checks everything it can before it creates anything,
//! and undoes what it created when a later step fails.

use std::net::Ipv4Addr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::cidr::{format_mac, mac_for};
use crate::error::{Error, Result};
use crate::nftnl::Nftnl;
use crate::plumb::{ensure_bridge, free_address, plumb};
use crate::ports::PortMapping;
use crate::rtnl::Netlink;
use crate::spec::{CONTAINER_IFNAME, DEFAULT_NETWORK, NetworkSpec, check_name};
use crate::store::{AppliedRules, Lease, NetworkConfig, Releasing, Store};

/// A network and the containers attached to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkInfo {
    /// The network's configuration.
    pub config: NetworkConfig,
    /// Its leases, by address.
    pub containers: Vec<Lease>,
}

/// A container's place on a network: what its `/etc/hosts`, its
/// `inspect` output (docker's NetworkSettings) and `port` need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    /// The network.
    pub network: String,
    /// The network's ID ([`NetworkConfig::id`]).
    pub network_id: String,
    /// The endpoint's ID as docker shows one (64 hex digits): derived
    /// from the network's and the container's IDs, the same at every read.
    pub endpoint_id: String,
    /// The container.
    pub container_id: String,
    /// The interface inside the container (`eth0`).
    pub interface: String,
    /// The container's address.
    pub address: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix_len: u8,
    /// The default gateway (the bridge's address).
    pub gateway: Ipv4Addr,
    /// The MAC address of the container's interface.
    pub mac: String,
    /// The host end of the veth pair.
    pub host_veth: String,
    /// The published ports.
    pub ports: Vec<PortMapping>,
}

/// The ID docker would show for the endpoint of `container_id` on the
/// network `network_id`: 64 hex digits, derived (SHA-256) so that every
/// read gives the same one without recording it.
pub fn endpoint_id(network_id: &str, container_id: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        format!("dunnage endpoint {network_id} {container_id}").as_bytes(),
    ))
}

impl Attachment {
    fn new(cfg: &NetworkConfig, lease: &Lease) -> Attachment {
        Attachment {
            network: cfg.name.clone(),
            network_id: cfg.id.clone(),
            endpoint_id: endpoint_id(&cfg.id, &lease.container_id),
            container_id: lease.container_id.clone(),
            interface: CONTAINER_IFNAME.to_string(),
            address: lease.address,
            prefix_len: cfg.subnet.prefix_len(),
            gateway: cfg.gateway,
            mac: lease.mac.clone(),
            host_veth: lease.host_veth.clone(),
            ports: lease.ports.clone(),
        }
    }
}

/// The networks of one state directory, with their bridges and rules in
/// one host network namespace.
///
/// It keeps a route-netlink and an nf_tables socket in the host namespace,
/// opened on first use: each new one costs a thread that enters the
/// namespace, and closing an nf_tables socket after a change of the rules
/// waits for an RCU grace period (the kernel finishes freeing the old
/// rules first), which was most of an attach with published ports.
/// Dropping the `Networks` closes them, the nf_tables one on a short-lived
/// thread of its own so that the drop does not wait for that grace period
/// (the facade opens a `Networks` per operation).
#[derive(Debug)]
pub struct Networks {
    store: Store,
    host: OwnedFd,
    sockets: Mutex<HostSockets>,
}

/// The sockets a [`Networks`] keeps in its host namespace.
#[derive(Debug, Default)]
struct HostSockets {
    route: Option<Netlink>,
    nft: Option<Nftnl>,
}

impl Drop for HostSockets {
    fn drop(&mut self) {
        if let Some(nft) = self.nft.take() {
            // When no thread can be made, spawn drops the closure, which
            // closes the socket here.
            let _ = std::thread::Builder::new()
                .name("dunnage-nft-close".into())
                .spawn(move || drop(nft));
        }
    }
}

impl HostSockets {
    /// The route-netlink socket, opened in `host` if there is none yet.
    fn route(&mut self, host: BorrowedFd<'_>) -> Result<&mut Netlink> {
        match &mut self.route {
            Some(nl) => Ok(nl),
            slot @ None => Ok(slot.insert(Netlink::open_in(host)?)),
        }
    }

    /// Bring table `ip dunnage` to the rules for `state` over the kept
    /// nf_tables socket. A socket whose batch failed is closed: what it
    /// may still hold is not read by the next one.
    fn apply_rules(&mut self, host: BorrowedFd<'_>, state: &State) -> Result<()> {
        let nft = match &mut self.nft {
            Some(n) => n,
            slot @ None => slot.insert(Nftnl::open_in(host)?),
        };
        let result = nft.apply(crate::nft::TABLE, &crate::nft::change(state));
        if result.is_err() {
            self.nft = None;
        }
        result
    }
}

impl Networks {
    /// Open (creating if needed) the state directory `state_dir`, managing
    /// bridges and rules in the network namespace `host_netns` (an fd of
    /// `/proc/self/ns/net`, `/run/netns/NAME`, ...).
    pub fn open(state_dir: &Path, host_netns: BorrowedFd<'_>) -> Result<Networks> {
        let host = host_netns
            .try_clone_to_owned()
            .map_err(|source| Error::Netns {
                op: "dup host network namespace fd",
                source,
            })?;
        Ok(Networks {
            store: Store::open(state_dir)?,
            host,
            sockets: Mutex::new(HostSockets::default()),
        })
    }

    /// The state directory.
    pub fn state_dir(&self) -> &Path {
        self.store.root()
    }

    /// The host network namespace.
    pub fn host_netns(&self) -> BorrowedFd<'_> {
        self.host.as_fd()
    }

    /// Create the network `spec` describes: the bridge (up, with the
    /// gateway address), `ip_forward` and `route_localnet` on, the NAT
    /// rules; then record it. Refused before anything is created when the
    /// name exists, the bridge name is taken, or the subnet overlaps
    /// another network's.
    pub fn create(&self, spec: &NetworkSpec) -> Result<NetworkConfig> {
        let cfg = spec.resolve()?;
        let _lock = self.store.lock()?;
        let all = self.store.networks()?;
        for other in &all {
            if other.name == cfg.name {
                return Err(Error::NetworkExists(cfg.name));
            }
            if other.bridge == cfg.bridge {
                return Err(Error::BridgeInUse {
                    bridge: cfg.bridge,
                    network: other.name.clone(),
                });
            }
            if other.subnet.overlaps(&cfg.subnet) {
                return Err(Error::SubnetOverlap {
                    subnet: cfg.subnet,
                    other_network: other.name.clone(),
                    other_subnet: other.subnet,
                });
            }
        }
        let mut socks = self.sockets();
        let nl = socks.route(self.host.as_fd())?;
        if nl.link(&cfg.bridge)?.is_some() {
            return Err(Error::Netlink {
                op: "create bridge",
                target: cfg.bridge.clone(),
                source: std::io::Error::from_raw_os_error(libc::EEXIST),
            });
        }
        let result = ensure_bridge(self.host.as_fd(), nl, &cfg)
            .and_then(|_| self.store.write_network(&cfg))
            .and_then(|()| self.apply_rules(&mut socks));
        if let Err(e) = result {
            let _ = self.store.remove_network(&cfg.name);
            if let Ok(nl) = socks.route(self.host.as_fd()) {
                let _ = nl.delete_link_named(&cfg.bridge);
            }
            let _ = self.apply_rules(&mut socks);
            return Err(e);
        }
        Ok(cfg)
    }

    /// The default network `dunnage0` (`172.17.0.0/16`), created if missing.
    pub fn ensure_default(&self) -> Result<NetworkConfig> {
        if let Some(cfg) = self.store.network(DEFAULT_NETWORK)? {
            return Ok(cfg);
        }
        match self.create(&NetworkSpec::new(DEFAULT_NETWORK)) {
            Err(Error::NetworkExists(_)) => self
                .store
                .network(DEFAULT_NETWORK)?
                .ok_or_else(|| Error::NetworkNotFound(DEFAULT_NETWORK.into())),
            r => r,
        }
    }

    /// Remove the network: its bridge, its rules, its record. Refused while
    /// containers are attached.
    pub fn remove(&self, name: &str) -> Result<()> {
        check_name("network", name, 64)?;
        let _lock = self.store.lock()?;
        let cfg = self
            .store
            .network(name)?
            .ok_or_else(|| Error::NetworkNotFound(name.to_string()))?;
        let leases = self.store.leases(name)?;
        if !leases.is_empty() {
            return Err(Error::NetworkInUse {
                network: name.to_string(),
                containers: leases.into_iter().map(|l| l.container_id).collect(),
            });
        }
        let mut socks = self.sockets();
        socks
            .route(self.host.as_fd())?
            .delete_link_named(&cfg.bridge)?;
        self.store.remove_network(name)?;
        self.apply_rules(&mut socks)
    }

    /// The network `name` and its containers.
    pub fn inspect(&self, name: &str) -> Result<NetworkInfo> {
        check_name("network", name, 64)?;
        let _lock = self.store.lock()?;
        let config = self
            .store
            .network(name)?
            .ok_or_else(|| Error::NetworkNotFound(name.to_string()))?;
        let containers = self.store.leases(name)?;
        Ok(NetworkInfo { config, containers })
    }

    /// The network `name_or_id` means, resolved as docker resolves a
    /// network reference: a full ID, then a name, then a unique prefix of
    /// an ID. [`Error::NetworkNotFound`] when nothing matches,
    /// [`Error::AmbiguousNetwork`] when a prefix matches several IDs.
    pub fn find(&self, name_or_id: &str) -> Result<NetworkInfo> {
        let all = self.list()?;
        let pick = |i: &NetworkInfo| i.config.id == name_or_id;
        if let Some(n) = all.iter().find(|i| pick(i)) {
            return Ok(n.clone());
        }
        if let Some(n) = all.iter().find(|i| i.config.name == name_or_id) {
            return Ok(n.clone());
        }
        let is_hex = !name_or_id.is_empty()
            && name_or_id
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        let mut by_prefix: Vec<NetworkInfo> = if is_hex {
            all.into_iter()
                .filter(|i| i.config.id.starts_with(name_or_id))
                .collect()
        } else {
            Vec::new()
        };
        match by_prefix.len() {
            0 => Err(Error::NetworkNotFound(name_or_id.to_string())),
            1 => Ok(by_prefix.remove(0)),
            matches => Err(Error::AmbiguousNetwork {
                prefix: name_or_id.to_string(),
                matches,
            }),
        }
    }

    /// Every network, by name.
    pub fn list(&self) -> Result<Vec<NetworkInfo>> {
        let _lock = self.store.lock()?;
        self.store
            .networks()?
            .into_iter()
            .map(|config| {
                let containers = self.store.leases(&config.name)?;
                Ok(NetworkInfo { config, containers })
            })
            .collect()
    }

    /// The container's attachment to `network`.
    pub fn attachment(&self, network: &str, container_id: &str) -> Result<Attachment> {
        check_name("network", network, 64)?;
        check_name("container id", container_id, 128)?;
        let _lock = self.store.lock()?;
        let cfg = self
            .store
            .network(network)?
            .ok_or_else(|| Error::NetworkNotFound(network.to_string()))?;
        let lease = self
            .store
            .lease(network, container_id)?
            .ok_or_else(|| Error::NotAttached {
                network: network.to_string(),
                container_id: container_id.to_string(),
            })?;
        Ok(Attachment::new(&cfg, &lease))
    }

    /// Check, without creating anything, what [`attach`](Self::attach)
    /// checks first: `network` exists, the container is not attached to
    /// it, and no port of `ports` is published twice or by another
    /// container. A runtime calls this before it makes anything else of a
    /// container, so bad input leaves nothing behind. (`attach` checks
    /// again under the lock: another process may publish in between.)
    pub fn check_attach(
        &self,
        network: &str,
        container_id: &str,
        ports: &[PortMapping],
    ) -> Result<()> {
        check_name("network", network, 64)?;
        check_name("container id", container_id, 128)?;
        let _lock = self.store.lock()?;
        let state = self.read_state()?;
        let Some((_, leases)) = state.iter().find(|(c, _)| c.name == network) else {
            return Err(Error::NetworkNotFound(network.to_string()));
        };
        if leases.iter().any(|l| l.container_id == container_id) {
            return Err(Error::AlreadyAttached {
                network: network.to_string(),
                container_id: container_id.to_string(),
            });
        }
        Self::check_ports(&state, container_id, ports)
    }

    /// Attach the container whose network namespace is `container_netns`
    /// to `network`: lease the lowest free address, create a veth pair with
    /// one end on the bridge and the other inside the container as `eth0`
    /// with the docker-style MAC, the address and a default route via the
    /// gateway, and publish `ports`. Refused before anything is created
    /// when the container is already attached, a port is published twice
    /// or by another container, or the subnet is full; a later failure
    /// (the container has an `eth0` already, the kernel refuses) undoes the
    /// lease, the pair and the rules.
    pub fn attach(
        &self,
        network: &str,
        container_id: &str,
        container_netns: BorrowedFd<'_>,
        ports: &[PortMapping],
    ) -> Result<Attachment> {
        check_name("network", network, 64)?;
        check_name("container id", container_id, 128)?;
        let _lock = self.store.lock()?;
        // Every check and the rule set below work from one read of the
        // state, taken under the lock.
        let mut state = self.read_state()?;
        let Some(pos) = state.iter().position(|(c, _)| c.name == network) else {
            return Err(Error::NetworkNotFound(network.to_string()));
        };
        let (cfg, leases) = &state[pos];
        let cfg = cfg.clone();
        if leases.iter().any(|l| l.container_id == container_id) {
            return Err(Error::AlreadyAttached {
                network: network.to_string(),
                container_id: container_id.to_string(),
            });
        }
        Self::check_ports(&state, container_id, ports)?;
        let mut socks = self.sockets();
        let held = self.held_addresses(network, socks.route(self.host.as_fd())?)?;
        let address = free_address(&cfg, leases, &held)?;
        let suffix =
            dunnage_base::rand::random_hex(4).map_err(Error::io("random", "/dev/urandom"))?;
        let lease = Lease {
            container_id: container_id.to_string(),
            address,
            mac: format_mac(&mac_for(address)),
            host_veth: format!("veth{}", &suffix[..7]),
            ports: ports.to_vec(),
        };
        self.store.write_lease(network, &lease)?;
        state[pos].1.push(lease.clone());
        let result = (|| {
            let nl = socks.route(self.host.as_fd())?;
            let bridge = ensure_bridge(self.host.as_fd(), nl, &cfg)?;
            plumb(nl, &cfg, bridge, &lease, container_netns)?;
            self.sync_rules(&mut socks, &state)
        })();
        match result {
            Ok(()) => Ok(Attachment::new(&cfg, &lease)),
            Err(e) => {
                let _ = self.store.remove_lease(network, container_id);
                if let Ok(nl) = socks.route(self.host.as_fd()) {
                    let _ = nl.delete_link_named(&lease.host_veth);
                }
                let _ = self.apply_rules(&mut socks);
                Err(e)
            }
        }
    }

    /// Detach the container from `network`: its veth pair goes, its ports
    /// are unpublished, its address is released. A pair that is already
    /// gone is not an error.
    ///
    /// Deleting a veth pair makes the kernel wait for RCU grace periods
    /// (17-34 ms on a loaded machine, most of a detach's time), so the
    /// pair is deleted here only while the container's network namespace
    /// lives. When nothing holds that namespace any more (the runtime
    /// killed the container and closed its namespace first, as
    /// `Container::remove` does), the kernel is already destroying it in
    /// the background, and the pair with it: detach then leaves the pair
    /// to the kernel and returns at once. The host end can then be seen in
    /// the host namespace for a few milliseconds after `detach` returns;
    /// it is on no lease and carries no rule, and the address lives only
    /// in the dying namespace (with the docker-style MAC derived from it).
    /// So "detach leaves
    /// no links" holds once the kernel's clean-up of the namespace has
    /// run, not necessarily when `detach` returns. Until then the address
    /// is not leased again: detach records it as held by that host end
    /// ([`Releasing`], in the state directory, so
    /// other processes see it), and an attach looks the host end up and
    /// reclaims the address once it is gone.
    ///
    /// [`attach`](Self::attach) keeps nothing of the container's
    /// namespace: it makes no netlink socket there (the kernel frees one
    /// a grace period after its close, and it holds its namespace until
    /// then), so the namespace dies with the container's last process and
    /// a `remove` right after a short container's exit takes this fast
    /// path. (A socket the container's own processes left, a netlink or a
    /// bound UDP one, can still keep it that long; detach then deletes the
    /// pair itself.)
    pub fn detach(&self, network: &str, container_id: &str) -> Result<()> {
        check_name("network", network, 64)?;
        check_name("container id", container_id, 128)?;
        let _lock = self.store.lock()?;
        let mut state = self.read_state()?;
        let lease = state
            .iter_mut()
            .filter(|(c, _)| c.name == network)
            .find_map(|(_, leases)| {
                let i = leases.iter().position(|l| l.container_id == container_id)?;
                Some(leases.remove(i))
            })
            .ok_or_else(|| Error::NotAttached {
                network: network.to_string(),
                container_id: container_id.to_string(),
            })?;
        let mut socks = self.sockets();
        let nl = socks.route(self.host.as_fd())?;
        // The pair first: while it is there, its lease stays. A pair left
        // to the kernel holds its address (a `Releasing` record, written
        // before the lease goes) until the next attach finds it gone.
        if let Some(link) = nl.link(&lease.host_veth)? {
            if nl.peer_netns_gone(&link)? {
                self.store.write_releasing(
                    network,
                    &Releasing {
                        address: lease.address,
                        host_veth: lease.host_veth.clone(),
                    },
                )?;
            } else {
                match nl.delete_link(link.index) {
                    Err(e) if e.raw_os_error() != Some(libc::ENODEV) => return Err(e),
                    _ => {}
                }
            }
        }
        self.store.remove_lease(network, container_id)?;
        self.sync_rules(&mut socks, &state)
    }

    /// The addresses of `network` still held by a detached container's
    /// dying namespace: those whose old host end still exists. Records
    /// whose host end is gone are removed (one link lookup each).
    fn held_addresses(&self, network: &str, nl: &mut Netlink) -> Result<Vec<Ipv4Addr>> {
        let mut held = Vec::new();
        for r in self.store.releasing(network)? {
            if nl.link(&r.host_veth)?.is_some() {
                held.push(r.address);
            } else {
                self.store.remove_releasing(network, r.address)?;
            }
        }
        Ok(held)
    }

    /// Refuse `ports` when one is listed twice or already published by a
    /// container of any network in `state`.
    fn check_ports(state: &State, container_id: &str, ports: &[PortMapping]) -> Result<()> {
        for (i, p) in ports.iter().enumerate() {
            if ports[..i].iter().any(|q| q.collides_with(p)) {
                return Err(Error::PortInUse {
                    port: *p,
                    container_id: container_id.to_string(),
                });
            }
        }
        for lease in state.iter().flat_map(|(_, leases)| leases) {
            if let Some(p) = ports
                .iter()
                .find(|p| lease.ports.iter().any(|q| q.collides_with(p)))
            {
                return Err(Error::PortInUse {
                    port: *p,
                    container_id: lease.container_id.clone(),
                });
            }
        }
        Ok(())
    }

    /// Apply the nftables rule set for the current state again, even if
    /// the record says it is in place: after something else deleted the
    /// `dunnage` table (`nft flush ruleset`).
    pub fn reapply_rules(&self) -> Result<()> {
        let _lock = self.store.lock()?;
        self.store.forget_applied_rules()?;
        let mut socks = self.sockets();
        self.apply_rules(&mut socks)
    }

    /// Replace the nftables table with the rules for the current state,
    /// unless the record says this very rule set is in place in this boot
    /// and this host namespace.
    fn apply_rules(&self, socks: &mut HostSockets) -> Result<()> {
        let state = self.read_state()?;
        self.sync_rules(socks, &state)
    }

    /// The host namespace's sockets, locked (a panic of another thread
    /// while it held them leaves them usable: each request checks its
    /// answers).
    fn sockets(&self) -> MutexGuard<'_, HostSockets> {
        self.sockets.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every network with its leases, as the state directory has them.
    fn read_state(&self) -> Result<State> {
        self.store
            .networks()?
            .into_iter()
            .map(|net| {
                let leases = self.store.leases(&net.name)?;
                Ok((net, leases))
            })
            .collect()
    }

    /// Bring the kernel's table to the rules for `state` and record them,
    /// unless the record says that rule set is in place in this boot and
    /// this host namespace.
    fn sync_rules(&self, socks: &mut HostSockets, state: &State) -> Result<()> {
        let ruleset = crate::nft::ruleset(state);
        let boot_id = std::fs::read_to_string(BOOT_ID)
            .map_err(Error::io("read", BOOT_ID))?
            .trim()
            .to_string();
        let record = AppliedRules {
            boot_id,
            netns_cookie: socks.route(self.host.as_fd())?.netns_cookie()?,
            ruleset,
        };
        if self.store.applied_rules().as_ref() == Some(&record) {
            return Ok(());
        }
        // Forget first: a failure or crash below makes the next call apply.
        self.store.forget_applied_rules()?;
        socks.apply_rules(self.host.as_fd(), state)?;
        self.store.write_applied_rules(&record)
    }
}

const BOOT_ID: &str = "/proc/sys/kernel/random/boot_id";

/// Every network with its leases.
type State = Vec<(NetworkConfig, Vec<Lease>)>;
