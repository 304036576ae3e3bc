//! The state directory: network configurations and address leases.
//!
//! ```text
//! STATE/
//!   lock                               flock: held exclusively by every
//!                                      change and every read of the whole
//!   rules.json                         AppliedRules: the nftables rule set
//!                                      last applied, and where (boot, netns)
//!   networks/NAME/config.json          NetworkConfig
//!   networks/NAME/leases/CONTAINER.json  Lease (address, MAC, host veth, ports)
//!   networks/NAME/releasing/ADDRESS.json Releasing: a detached container's
//!                                      address, held while its host end lives
//! ```
//!
//! Network configurations are written with
//! [`dunnage_base::fs::write_atomic`] (durable); leases and `rules.json`,
//! which describe what exists only for one boot, with
//! [`dunnage_base::fs::write_replace`] (atomic, without fsync: a process
//! crash keeps them, and a power loss takes what they describe with it;
//! an empty lease file, what a power loss can leave, reads as no lease).
//! A reader sees a whole old or a whole new file; a crash leaves at most a
//! `.NAME.tmp-*` file, which readers skip and remove ("repaired at open").
//! One lock serialises all changes of all networks in all processes: the
//! lease allocation, the port-collision check and the nftables rule set
//! are computed from the files read under it, so two processes can never
//! hand out the same address or publish the same port.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use dunnage_base::fs::{is_temp_name, write_atomic, write_replace};
use dunnage_base::lock::{FileLock, LockKind};
use serde::{Deserialize, Serialize};

use crate::cidr::Ipv4Net;
use crate::error::{Error, Result};
use crate::ports::PortMapping;

/// A network's persisted configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkConfig {
    /// The network's name.
    pub name: String,
    /// The bridge's interface name in the host namespace.
    pub bridge: String,
    /// The subnet containers get addresses from.
    pub subnet: Ipv4Net,
    /// The bridge's address and the containers' default gateway.
    pub gateway: Ipv4Addr,
    /// The MTU of the bridge and of the containers' veth pairs.
    pub mtu: u32,
    /// The network's ID as docker gives one: 64 lowercase hex digits,
    /// random at creation. A network recorded before IDs existed has none
    /// in its file; reading it then gives it [`legacy_id`] of its
    /// name, the same at every read.
    #[serde(default)]
    pub id: String,
    /// When the network was created, in nanoseconds since the Unix epoch
    /// (0: not recorded, a network made before creation times were).
    #[serde(default)]
    pub created_unix_nanos: u64,
    /// Whether the gateway was derived from a subnet the creator gave
    /// without a gateway: docker then shows the subnet alone in its IPAM
    /// config (false for a network recorded before this was).
    #[serde(default)]
    pub gateway_implied: bool,
}

/// The ID of a network recorded before networks had IDs: the SHA-256 of
/// its name (stable across reads, 64 hex digits like a random one).
pub fn legacy_id(name: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(
        format!("dunnage network {name}").as_bytes(),
    ))
}

/// Whether `id` is a network ID: 64 lowercase hex digits.
pub fn is_network_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// One container's attachment to a network, as persisted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The container.
    pub container_id: String,
    /// Its address in the network's subnet.
    pub address: Ipv4Addr,
    /// Its MAC address (`02:42:...`).
    pub mac: String,
    /// The host end of its veth pair.
    pub host_veth: String,
    /// Its published ports.
    pub ports: Vec<PortMapping>,
}

/// An address released by a detach that left the container's veth pair to
/// the kernel's clean-up of its dying namespace: until the host end
/// `host_veth` is gone, the old `eth0` with this address (and the MAC
/// derived from it) may still exist, so the address is not leased again.
/// Written like a lease (atomic, no fsync); the next attach that looks
/// finds the link gone and removes the record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Releasing {
    /// The address.
    pub address: Ipv4Addr,
    /// The host end of the old pair, in the host namespace.
    pub host_veth: String,
}

/// The rule set last applied, with the boot and the network namespace it
/// was applied in: a change that leaves the rule set as it is (a container
/// without published ports) then needs no `nft` run, while a reboot or a
/// new host namespace (new `boot_id`, new netns cookie) gets it again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRules {
    /// `/proc/sys/kernel/random/boot_id` at the time.
    pub boot_id: String,
    /// The host namespace's `SO_NETNS_COOKIE`.
    pub netns_cookie: u64,
    /// The nft JSON that was applied.
    pub ruleset: serde_json::Value,
}

/// The state directory.
#[derive(Clone, Debug)]
pub(crate) struct Store {
    root: PathBuf,
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(Error::io("create directory", path))
}

impl Store {
    pub(crate) fn open(root: &Path) -> Result<Store> {
        create_dir(&root.join("networks"))?;
        Ok(Store {
            root: root.to_path_buf(),
        })
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Take the state lock (waits for other processes).
    pub(crate) fn lock(&self) -> Result<FileLock> {
        let path = self.root.join("lock");
        FileLock::lock(&path, LockKind::Exclusive).map_err(Error::io("lock", path))
    }

    fn network_dir(&self, name: &str) -> PathBuf {
        self.root.join("networks").join(name)
    }

    /// Every network, sorted by name.
    pub(crate) fn networks(&self) -> Result<Vec<NetworkConfig>> {
        let dir = self.root.join("networks");
        let mut out = Vec::new();
        for name in list_dir(&dir)? {
            if let Some(cfg) = self.network(&name)? {
                out.push(cfg);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// The network `name`, if it exists (a directory without a config is
    /// the rest of an interrupted create or remove, and does not count).
    pub(crate) fn network(&self, name: &str) -> Result<Option<NetworkConfig>> {
        let path = self.network_dir(name).join("config.json");
        let mut cfg: Option<NetworkConfig> = read_json(&path)?;
        if let Some(c) = &mut cfg {
            if c.name != name {
                return Err(Error::Corrupt {
                    path,
                    reason: format!("names network {:?}", c.name),
                });
            }
            if c.id.is_empty() {
                c.id = legacy_id(name);
            } else if !is_network_id(&c.id) {
                return Err(Error::Corrupt {
                    path,
                    reason: format!("network id {:?} is not 64 hex digits", c.id),
                });
            }
        }
        Ok(cfg)
    }

    pub(crate) fn write_network(&self, cfg: &NetworkConfig) -> Result<()> {
        let dir = self.network_dir(&cfg.name);
        create_dir(&dir.join("leases"))?;
        write_json(&dir.join("config.json"), cfg)
    }

    /// Remove the network's directory: config first, so that a crash in
    /// between leaves a directory that no longer counts as a network.
    pub(crate) fn remove_network(&self, name: &str) -> Result<()> {
        let dir = self.network_dir(name);
        let cfg = dir.join("config.json");
        match std::fs::remove_file(&cfg) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", cfg)(e)),
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove directory", dir)(e)),
        }
    }

    /// The network's leases, sorted by address.
    pub(crate) fn leases(&self, network: &str) -> Result<Vec<Lease>> {
        let dir = self.network_dir(network).join("leases");
        let mut out = Vec::new();
        for file in list_dir(&dir)? {
            let Some(id) = file.strip_suffix(".json") else {
                continue;
            };
            let path = dir.join(&file);
            if let Some(lease) = read_lease(&path)? {
                if lease.container_id != id {
                    return Err(Error::Corrupt {
                        path,
                        reason: format!("names container {:?}", lease.container_id),
                    });
                }
                out.push(lease);
            }
        }
        out.sort_by_key(|l| l.address);
        Ok(out)
    }

    pub(crate) fn lease(&self, network: &str, container_id: &str) -> Result<Option<Lease>> {
        read_lease(&self.lease_path(network, container_id))
    }

    fn lease_path(&self, network: &str, container_id: &str) -> PathBuf {
        self.network_dir(network)
            .join("leases")
            .join(format!("{container_id}.json"))
    }

    /// Record a lease, atomically for every reader but without fsync. A
    /// lease describes state that lives only as long as the boot (the
    /// veth pair, the address inside a namespace): a process crash keeps
    /// it (the page cache survives), and after a power loss the network it
    /// describes is gone anyway. The fsyncs of a durable write were most
    /// of an attach's time on a busy disk (13 ms median, see BENCHMARKS.md).
    /// A power loss can leave the file empty (the rename reached the disk,
    /// the data did not): [`Store::leases`] reads an empty lease file as
    /// no lease.
    pub(crate) fn write_lease(&self, network: &str, lease: &Lease) -> Result<()> {
        let path = self.lease_path(network, &lease.container_id);
        let data = serde_json::to_vec_pretty(lease).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_replace(&path, &data, 0o644).map_err(Error::io("write", path))
    }

    pub(crate) fn remove_lease(&self, network: &str, container_id: &str) -> Result<()> {
        let path = self.lease_path(network, container_id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove lease", path)(e)),
        }
    }
}

impl Store {
    fn releasing_path(&self, network: &str, address: Ipv4Addr) -> PathBuf {
        self.network_dir(network)
            .join("releasing")
            .join(format!("{address}.json"))
    }

    /// The network's addresses held by a detached container's dying
    /// namespace, sorted by address (a missing or empty file is none).
    pub(crate) fn releasing(&self, network: &str) -> Result<Vec<Releasing>> {
        let dir = self.network_dir(network).join("releasing");
        let mut out = Vec::new();
        for file in list_dir(&dir)? {
            let Some(name) = file.strip_suffix(".json") else {
                continue;
            };
            let path = dir.join(&file);
            let r: Option<Releasing> = match std::fs::symlink_metadata(&path) {
                Ok(m) if m.is_file() && m.len() == 0 => None,
                _ => read_json(&path)?,
            };
            if let Some(r) = r {
                if r.address.to_string() != name {
                    return Err(Error::Corrupt {
                        path,
                        reason: format!("names address {}", r.address),
                    });
                }
                out.push(r);
            }
        }
        out.sort_by_key(|r| r.address);
        Ok(out)
    }

    /// Record an address held by a dying namespace (see [`Releasing`]).
    pub(crate) fn write_releasing(&self, network: &str, r: &Releasing) -> Result<()> {
        let path = self.releasing_path(network, r.address);
        create_dir(&self.network_dir(network).join("releasing"))?;
        let data = serde_json::to_vec_pretty(r).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_replace(&path, &data, 0o644).map_err(Error::io("write", path))
    }

    pub(crate) fn remove_releasing(&self, network: &str, address: Ipv4Addr) -> Result<()> {
        let path = self.releasing_path(network, address);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", path)(e)),
        }
    }

    fn rules_path(&self) -> PathBuf {
        self.root.join("rules.json")
    }

    /// The record of the last applied rule set; an unreadable one counts as
    /// none (the rules are then applied again, which repairs it).
    pub(crate) fn applied_rules(&self) -> Option<AppliedRules> {
        read_json(&self.rules_path()).ok().flatten()
    }

    /// Record the applied rule set, atomically but without fsync: the
    /// record is a cache of what the kernel holds in this boot (it names
    /// the boot), and a lost or torn one only makes the next change apply
    /// the rules again. Saves two fsyncs per change of the rule set.
    pub(crate) fn write_applied_rules(&self, rules: &AppliedRules) -> Result<()> {
        let path = self.rules_path();
        let data = serde_json::to_vec_pretty(rules).map_err(|e| Error::Corrupt {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        write_replace(&path, &data, 0o644).map_err(Error::io("write", path))
    }

    pub(crate) fn forget_applied_rules(&self) -> Result<()> {
        let path = self.rules_path();
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io("remove", path)(e)),
        }
    }
}

/// The names in `dir` (missing: none), removing temporary files a crash
/// left behind.
fn list_dir(dir: &Path) -> Result<Vec<String>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read directory", dir)(e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(Error::io("read directory", dir))?;
        let name = entry.file_name();
        if is_temp_name(&name) {
            let _ = std::fs::remove_file(entry.path());
            continue;
        }
        match name.into_string() {
            Ok(s) => out.push(s),
            Err(_) => {
                return Err(Error::Corrupt {
                    path: entry.path(),
                    reason: "a name that is not UTF-8".into(),
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A lease file: missing or empty (a non-durable write cut by a power
/// loss, see [`Store::write_lease`]) is no lease.
fn read_lease(path: &Path) -> Result<Option<Lease>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() && m.len() == 0 => Ok(None),
        _ => read_json(path),
    }
}

/// Read and parse `path` (missing: `None`), without following a symlink
/// planted in its place.
fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let read = || -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(path)?;
        let mut data = Vec::new();
        f.read_to_end(&mut data)?;
        Ok(data)
    };
    let data = match read() {
        Ok(d) => d,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io("read", path)(e)),
    };
    serde_json::from_slice(&data)
        .map(Some)
        .map_err(|e| Error::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(|e| Error::Corrupt {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomic(path, &data, 0o644).map_err(Error::io("write", path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use dunnage_testsupport::TempDir;

    fn config(name: &str) -> NetworkConfig {
        NetworkConfig {
            name: name.into(),
            bridge: name.into(),
            subnet: "10.9.0.0/24".parse().unwrap(),
            gateway: "10.9.0.1".parse().unwrap(),
            mtu: 1500,
            id: "ab".repeat(32),
            created_unix_nanos: 1,
            gateway_implied: false,
        }
    }

    #[test]
    fn round_trips_and_skips_crash_leftovers() {
        let dir = TempDir::new("store").unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.write_network(&config("n")).unwrap();
        let lease = Lease {
            container_id: "c".into(),
            address: "10.9.0.2".parse().unwrap(),
            mac: "02:42:0a:09:00:02".into(),
            host_veth: "veth1234567".into(),
            ports: vec!["80:80".parse().unwrap()],
        };
        s.write_lease("n", &lease).unwrap();
        let leftover = dir.join("networks/n/leases/.c.json.tmp-0123456789abcdef");
        std::fs::write(&leftover, b"half a fi").unwrap();
        assert_eq!(s.leases("n").unwrap(), vec![lease]);
        assert!(!leftover.exists(), "repaired at read");
        assert_eq!(s.networks().unwrap(), vec![config("n")]);
        // A directory without config.json is an interrupted create.
        std::fs::create_dir_all(dir.join("networks/half/leases")).unwrap();
        assert_eq!(s.networks().unwrap().len(), 1);
        s.remove_lease("n", "c").unwrap();
        s.remove_network("n").unwrap();
        assert!(s.network("n").unwrap().is_none());
    }

    #[test]
    fn malformed_and_hostile_state_files_are_typed_errors() {
        let dir = TempDir::new("store-bad").unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.write_network(&config("n")).unwrap();
        let cfg = dir.join("networks/n/config.json");
        let lease = dir.join("networks/n/leases/c.json");
        let bad_configs: [&[u8]; 8] = [
            b"",
            b"{",
            b"\xff\xfe",
            br#"{"name":"n","bridge":"n","subnet":"10.9.0.1/24","gateway":"10.9.0.1","mtu":1500}"#,
            br#"{"name":"other","bridge":"n","subnet":"10.9.0.0/24","gateway":"10.9.0.1","mtu":1500}"#,
            br#"{"name":"n","bridge":"n","subnet":"10.9.0.0/24","gateway":"10.9.0.1","mtu":1500,"id":"ABC"}"#,
            br#"{"name":"n","bridge":"n","subnet":"10.9.0.0/24","gateway":"10.9.0.1","mtu":1500,"id":"../../etc/passwd"}"#,
            br#"{"name":"n","bridge":"n","subnet":"10.9.0.0/24","gateway":"10.9.0.1","mtu":1500,"id":7}"#,
        ];
        for bad in bad_configs {
            std::fs::write(&cfg, bad).unwrap();
            assert!(
                matches!(s.network("n"), Err(Error::Corrupt { .. })),
                "{bad:?}"
            );
            assert!(matches!(s.networks(), Err(Error::Corrupt { .. })));
        }
        s.write_network(&config("n")).unwrap();
        let bad_leases: [&[u8]; 3] = [
            b"null",
            br#"{"container_id":"c","address":"10.9.0.999","mac":"","host_veth":"","ports":[]}"#,
            br#"{"container_id":"../x","address":"10.9.0.2","mac":"","host_veth":"","ports":[]}"#,
        ];
        for bad in bad_leases {
            std::fs::write(&lease, bad).unwrap();
            assert!(
                matches!(s.leases("n"), Err(Error::Corrupt { .. })),
                "{bad:?}"
            );
        }
        // An empty lease is what a power loss leaves of a lease written
        // without fsync: no lease.
        std::fs::write(&lease, b"").unwrap();
        assert_eq!(s.leases("n").unwrap(), vec![]);
        assert_eq!(s.lease("n", "c").unwrap(), None);
        std::fs::remove_file(&lease).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &lease).unwrap();
        let e = s.leases("n").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
    }

    #[test]
    fn a_network_recorded_before_ids_reads_with_a_stable_derived_id() {
        let dir = TempDir::new("store-legacy").unwrap();
        let s = Store::open(dir.path()).unwrap();
        std::fs::create_dir_all(dir.join("networks/old/leases")).unwrap();
        std::fs::write(
            dir.join("networks/old/config.json"),
            br#"{"name":"old","bridge":"old","subnet":"10.9.0.0/24","gateway":"10.9.0.1","mtu":1500}"#,
        )
        .unwrap();
        let a = s.network("old").unwrap().unwrap();
        let b = s.network("old").unwrap().unwrap();
        assert!(is_network_id(&a.id), "{}", a.id);
        assert_eq!(a.id, b.id);
        assert_eq!(a.id, legacy_id("old"));
        assert_ne!(legacy_id("old"), legacy_id("older"));
        assert_eq!(a.created_unix_nanos, 0);
        assert_eq!(s.networks().unwrap(), vec![a]);
    }

    #[test]
    fn releasing_records_round_trip_and_bad_ones_are_typed_errors() {
        let dir = TempDir::new("store-releasing").unwrap();
        let s = Store::open(dir.path()).unwrap();
        s.write_network(&config("n")).unwrap();
        assert_eq!(s.releasing("n").unwrap(), vec![]);
        let r = Releasing {
            address: "10.9.0.7".parse().unwrap(),
            host_veth: "veth1234567".into(),
        };
        s.write_releasing("n", &r).unwrap();
        assert_eq!(s.releasing("n").unwrap(), vec![r.clone()]);
        s.remove_releasing("n", r.address).unwrap();
        s.remove_releasing("n", r.address).unwrap();
        assert_eq!(s.releasing("n").unwrap(), vec![]);
        let path = dir.join("networks/n/releasing/10.9.0.7.json");
        let bad: [&[u8]; 4] = [
            b"{",
            b"null",
            br#"{"address":"10.9.0.8","host_veth":"v"}"#,
            br#"{"address":"10.9.0.999","host_veth":"v"}"#,
        ];
        for b in bad {
            std::fs::write(&path, b).unwrap();
            assert!(
                matches!(s.releasing("n"), Err(Error::Corrupt { .. })),
                "{b:?}"
            );
        }
        // Empty: what a power loss leaves; no record.
        std::fs::write(&path, b"").unwrap();
        assert_eq!(s.releasing("n").unwrap(), vec![]);
        std::fs::remove_file(&path).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", &path).unwrap();
        let e = s.releasing("n").unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{e}");
    }
}
