//! [`Container::create`]: the state directory, the rootfs (init and
//! read-write layers, mounted), the cgroup, and the process waiting at its
//! start gate. Each stage registers its undo; a failure runs them in
//! reverse, so a failed create leaves nothing.

use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use dunnage_cgroups::{Cgroup, CgroupPath, DeviceRule};
use dunnage_layerstore::InitLayer;
use dunnage_namespaces::Kind;

use crate::container::builder::{Container, StdioMode};
use crate::container::command;
use crate::container::error::{Error, Result, io_err};
use crate::container::handle::{ContainerHandle, Owned};
use crate::container::network;
use crate::container::shared_rootfs;
use crate::container::spec::Spec;
use crate::container::state::{self, State};
use crate::container::store::ContainerStore;

/// The undo actions of the stages done so far.
#[derive(Default)]
pub(crate) struct Undo(Vec<Box<dyn FnOnce()>>);

impl Undo {
    pub(crate) fn push(&mut self, f: impl FnOnce() + 'static) {
        self.0.push(Box::new(f));
    }

    /// Everything went well: keep what was made.
    pub(crate) fn commit(mut self) {
        self.0.clear();
    }
}

impl Drop for Undo {
    fn drop(&mut self) {
        while let Some(f) = self.0.pop() {
            f();
        }
    }
}

/// Docker's /etc/hosts for a container.
fn hosts_file(spec: &Spec) -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
         ff02::2\tip6-allrouters\n{}",
        if spec.hostname.is_empty() {
            String::new()
        } else {
            format!("127.0.1.1\t{}\n", spec.hostname)
        }
    )
}

/// The host's resolv.conf, without loopback name servers (unreachable from
/// the container's network namespace), as docker filters it.
fn resolv_conf(spec: &Spec) -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    if spec.network == crate::container::spec::Network::Host {
        return host;
    }
    host.lines()
        .filter(|l| {
            let mut w = l.split_whitespace();
            !(w.next() == Some("nameserver")
                && w.next()
                    .is_some_and(|a| a.starts_with("127.") || a == "::1"))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Write the container's hostname, hosts and resolv.conf in `dir`.
fn write_network_files(dir: &Path, spec: &Spec) -> Result<()> {
    for (name, text) in [
        ("hostname", format!("{}\n", spec.hostname)),
        ("hosts", hosts_file(spec)),
        ("resolv.conf", resolv_conf(spec)),
    ] {
        // Plain writes: the files are new, in a directory no one uses yet
        // (a container without state.json is unfinished), so neither
        // atomicity nor fsync buys anything.
        let path = dir.join(name);
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, text.as_bytes()))
            .map_err(io_err("write", path))?;
    }
    Ok(())
}

/// The device cgroup rules: the profile's (Docker's: deny all; allow
/// null, zero, full, random, urandom, tty, console; deny 10:229), with
/// runc's own allowances (mknod of any device, the default nodes, ptmx,
/// the ptys, /dev/net/tun, the spec's device nodes) when they start with
/// a deny-all. See [`with_default_allowances`] for the order.
pub(crate) fn device_rules(spec: &Spec) -> Vec<DeviceRule> {
    let rule = DeviceRule::new;
    let rules: Vec<DeviceRule> = spec
        .device_rules
        .iter()
        .map(|r| {
            let kind = match r.kind {
                Some(crate::profile::DeviceType::Char) => 'c',
                Some(crate::profile::DeviceType::Block) => 'b',
                _ => 'a',
            };
            let num = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
            rule(r.allow, kind, num(r.major), num(r.minor), &r.access)
        })
        .collect();
    let mut runc = vec![
        rule(true, 'c', None, None, "m"),
        rule(true, 'b', None, None, "m"),
    ];
    // The default nodes (null, zero, full, random, urandom, tty,
    // console, ptmx) and /dev/net/tun.
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
        (10, 200),
    ] {
        runc.push(rule(true, 'c', Some(major), Some(minor), "rwm"));
    }
    runc.push(rule(true, 'c', Some(136), None, "rwm"));
    // The spec's own device nodes (those of the default ones already
    // allowed are not written twice).
    for n in &spec.devices {
        let kind = match n.kind {
            crate::profile::DeviceType::Char => 'c',
            crate::profile::DeviceType::Block => 'b',
            _ => continue,
        };
        // A number out of range is no wildcard: such a node is not made.
        let (Ok(major), Ok(minor)) = (u32::try_from(n.major), u32::try_from(n.minor)) else {
            continue;
        };
        let r = rule(true, kind, Some(major), Some(minor), "rwm");
        if !runc.contains(&r) {
            runc.push(r);
        }
    }
    with_default_allowances(rules, runc)
}

/// `rules` with runc's default allowances `defaults` when they start with
/// a deny-all: the deny-all, the caller's rules, the allowances, then the
/// caller's rules once more.
///
/// The caller's rules come first so that the v1 `devices.list` lists them
/// in their order right after the deny-all (the kernel keeps exceptions in
/// the order they were first added; the OCI conformance suite reads them
/// back so, and crun passes it). Writing them again after the allowances
/// gives the same access as runc's order (deny-all, allowances, rules):
/// each rule only adds or removes access bits of its own exact device (or
/// resets everything, for type `a`), so for every bit the last rule
/// touching it decides, and that is the same rule in both orders.
fn with_default_allowances(
    mut rules: Vec<DeviceRule>,
    defaults: Vec<DeviceRule>,
) -> Vec<DeviceRule> {
    let deny_all_first = rules
        .first()
        .is_some_and(|r| !r.allow && r.kind == 'a' && r.major.is_none() && r.minor.is_none());
    if deny_all_first {
        let again = rules[1..].to_vec();
        rules.extend(defaults);
        rules.extend(again);
    }
    rules
}

impl Container {
    /// Make the container in `store`: resolved, its state directory, its
    /// rootfs mounted, its cgroup with the resources, and its process set
    /// up and waiting at the start gate ([`ContainerHandle::start`]).
    ///
    /// On any failure everything made so far is undone and the error
    /// returned.
    pub fn create(&self, store: &ContainerStore) -> Result<ContainerHandle> {
        let spec = self.resolve(store)?;
        create_spec(store, spec, [self.stdin, self.stdout, self.stderr])
    }
}

/// Make the container of the resolved `spec` (see [`Container::create`]).
pub(crate) fn create_spec(
    store: &ContainerStore,
    spec: Spec,
    stdio: [StdioMode; 3],
) -> Result<ContainerHandle> {
    // A spec from a monitor's stdin is checked like any input.
    state::check_id(&spec.id)?;
    if !crate::container::spec::valid_name(&spec.name) {
        return Err(Error::InvalidName(spec.name.clone()));
    }
    // A bridge network that does not exist or a port published already is
    // refused before anything is made.
    network::check(store, &spec)?;
    let mut undo = Undo::default();

    // The state directory, with the name checked under the store lock.
    let dir = store.dir_of(&spec.id);
    let creator_file;
    {
        let _all = store.lock_all()?;
        if let Some(id) = store.named(&spec.name)? {
            return Err(Error::NameInUse {
                name: spec.name.clone(),
                id,
            });
        }
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_err("mkdir", &dir))?;
        let d = dir.clone();
        undo.push(move || {
            let _ = std::fs::remove_dir_all(&d);
        });
        // Who is creating it, until state.json exists: the store check
        // leaves a create in progress alone.
        let me = std::process::id() as i32;
        // Without a start time the check could not tell this create from
        // a dead one (it would discard the container being made).
        let start = state::pid_start_time(me).ok_or_else(|| Error::Io {
            op: "read start time of",
            path: PathBuf::from(format!("/proc/{me}/stat")),
            source: std::io::Error::from(std::io::ErrorKind::InvalidData),
        })?;
        let creator = format!("{me} {start}\n");
        creator_file = crate::container::check::record_creator(&dir, &creator)?;
        let config = serde_json::to_vec_pretty(&spec).map_err(|e| Error::CorruptState {
            path: dir.join("config.json"),
            reason: e.to_string(),
        })?;
        // Not fsynced: a crash of the machine ends the container's
        // processes, and a directory left without config.json or
        // state.json is skipped by listing and deleted by remove.
        let path = dir.join("config.json");
        dunnage_base::fs::write_replace(&path, &config, 0o600).map_err(io_err("write", path))?;
    }
    // Only when they are bound into the container (an OCI bundle's
    // container binds none: its config's mounts say what goes to /etc), or
    // rewritten in place by a bridge network's attach: three inodes less to
    // allocate and free per container.
    if !spec.no_network_files
        || matches!(spec.network, crate::container::spec::Network::Bridge { .. })
    {
        write_network_files(&dir, &spec)?;
    }

    // The rootfs.
    let rootfs: PathBuf = match &spec.rootfs_dir {
        Some(d) => d.clone(),
        None => {
            let layers = store.images()?.layers();
            let chain = match &spec.chain {
                Some(c) => Some(c.parse::<dunnage_layerstore::ChainId>().map_err(|_| {
                    Error::CorruptState {
                        path: dir.join("config.json"),
                        reason: format!("bad chain ID {c:?}"),
                    }
                })?),
                None => None,
            };
            layers.create_rw(&spec.id, chain.as_ref(), Some(&InitLayer::default()))?;
            let (s, id) = (store.clone(), spec.id.clone());
            undo.push(move || {
                if let Ok(images) = s.images() {
                    let _ = images.layers().remove_rw(&id);
                }
            });
            let mounted = layers.mount_rw(&spec.id)?;
            let (s, id) = (store.clone(), spec.id.clone());
            undo.push(move || {
                if let Ok(images) = s.images() {
                    let _ = images.layers().unmount_rw(&id);
                }
            });
            mounted
        }
    };

    let st = State {
        status: Some(crate::container::spec::Status::Created),
        created_at: spec.created.clone(),
        ..State::default()
    };
    let handle = spawn(store, spec, &dir, &rootfs, stdio, &mut undo, st)?;
    undo.commit();
    crate::container::check::clear_creator(&dir, creator_file);
    Ok(handle)
}

/// Make the container's cgroup and its process (waiting at its start
/// gate) on the mounted `rootfs`, attach its network, and record `st`
/// with the new pid (and the shared rootfs bind) as its state. What is
/// made is pushed on `undo`; the caller commits.
pub(crate) fn spawn(
    store: &ContainerStore,
    spec: Spec,
    dir: &Path,
    rootfs: &Path,
    stdio: [StdioMode; 3],
    undo: &mut Undo,
    mut st: State,
) -> Result<ContainerHandle> {
    // The cgroup: made with its resources before the clone, or, when all
    // its directories are v1, while the child sets itself up (see below).
    let hierarchies = store.hierarchies()?;
    let cg_path = CgroupPath::new(&spec.cgroup)?;
    let mut resources = spec.resources.to_cgroup()?;
    resources.devices = device_rules(&spec);
    let make_cgroup = |undo: &mut Undo| -> Result<Cgroup> {
        let cg = Cgroup::create(hierarchies, &cg_path, &[])?;
        let c = cg.clone();
        undo.push(move || {
            let _ = c.kill();
            let _ = c.delete();
        });
        cg.apply(&resources)?;
        Ok(cg)
    };
    let planned = Cgroup::planned(hierarchies, &cg_path, &[])?;
    // Joined by path: the child must see our /sys/fs/cgroup (not in a
    // mount namespace it joins) and be allowed to write the tasks files
    // itself (not from a user namespace of its own).
    let later = !planned.dirs().is_empty()
        && planned
            .dirs()
            .iter()
            .all(|d| d.version == dunnage_cgroups::Version::V1)
        && !command::kinds(&spec).contains(Kind::User)
        && !command::joins_mount_namespace(&spec);

    // The process, waiting at its start gate.
    let mut cmd = command::build(&spec, rootfs, dir, stdio)?;
    // Sharing our mount namespace, the child mounts the rootfs bind, /proc,
    // /dev and the binds in ours: a create failing from here on detaches
    // them (else they would outlive it, with no container to delete, and
    // removing the bundle would delete through its binds).
    let shared_before = if shared_rootfs::shares_mount_namespace(&spec) {
        let before = shared_rootfs::top_mount(rootfs)?;
        // On disk before the child runs: a create killed before writing
        // state.json leaves its mounts to the store's repair, which needs
        // to know which they are.
        shared_rootfs::write_record(dir, rootfs, before)?;
        let r = rootfs.to_path_buf();
        undo.push(move || {
            let _ = shared_rootfs::unmount_newer(&r, before);
        });
        Some(before)
    } else {
        None
    };
    // The child joins the cgroup itself (a thread moving itself spares the
    // attach the kernel's wait for an RCU grace period): v1 by writing 0
    // to each `tasks` file, v2 as it is made (CLONE_INTO_CGROUP, which
    // needs the directory before the clone). All v1, the cgroup is made
    // while the clone's aftermath and the child's first mounts run, and
    // the child joins it by path when told it exists, before its cgroup
    // mounts.
    if later {
        cmd.join_cgroup_tasks_later(planned.dirs().iter().map(|d| d.path.join("tasks")));
    } else {
        let join = make_cgroup(undo)?.join_fds()?;
        cmd.join_cgroup_tasks(join.tasks);
        if let Some(dir) = join.v2_dir {
            cmd.into_cgroup(dir);
        }
    }
    // The state is written while the child sets itself up (its pid is all
    // it needs), but for a child sharing our mount namespace: which bind
    // its setup made goes into the state too. From then on the store sees
    // a created container (its creator no longer consulted) while its
    // setup and network attach finish; a remove meanwhile kills the child
    // and this create fails.
    let (mut made, mut early) = (None, None);
    let spawned = cmd.spawn_meanwhile(|m| {
        if later {
            let r = make_cgroup(undo).and_then(|_| Ok(m.cgroups_made()?));
            let failed = r.is_err();
            made = Some(r);
            if failed {
                return;
            }
        }
        if shared_before.is_none() {
            st.pid = m.pid();
            st.pid_start = state::pid_start_time(m.pid()).unwrap_or(0);
            early = Some(st.write(dir));
        }
    });
    // The first error of this process's own work, else the child's.
    let failed = match (made, early) {
        (Some(Err(e)), _) | (_, Some(Err(e))) => Some(e),
        _ => None,
    };
    let mut child = match (spawned, failed) {
        (Ok(child), None) => child,
        (Ok(mut child), Some(e)) => {
            drop(child.take_gate());
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
        (Err(_), Some(e)) => return Err(e),
        (Err(e), None) => return Err(e.into()),
    };
    let gate = child.take_gate();
    let pid = child.id();
    if network::attach(store, &spec, dir, pid)?.is_some() {
        let (s, sp) = (store.clone(), spec.clone());
        undo.push(move || {
            let _ = network::detach(&s, &sp);
        });
    }
    // The child has set the rootfs up: which bind remove is to unmount.
    if let Some(before) = shared_before {
        st.shared_rootfs = shared_rootfs::record(rootfs, before)?;
        st.pid = pid;
        st.pid_start = state::pid_start_time(pid).unwrap_or(0);
        st.write(dir)?;
    }
    let terminal = child.take_terminal()?;
    Ok(ContainerHandle::owned(
        store.clone(),
        spec,
        Owned {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            child,
            gate,
            terminal,
            unrecorded_exit: None,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::with_default_allowances;
    use dunnage_cgroups::{DeviceFilter, DeviceRule};

    /// The access the rules grant, as a sorted list of exceptions.
    fn effect(rules: &[DeviceRule]) -> (bool, Vec<String>) {
        let f = DeviceFilter::new(rules).unwrap();
        let mut ex: Vec<String> = f
            .exceptions()
            .iter()
            .map(|e| format!("{} {:?}:{:?} {}", e.kind, e.major, e.minor, e.access()))
            .collect();
        ex.sort();
        (f.default_allow(), ex)
    }

    #[test]
    fn caller_rules_first_same_access_as_runc_order() {
        let deny_all = DeviceRule::new(false, 'a', None, None, "rwm");
        let defaults = vec![
            DeviceRule::new(true, 'c', None, None, "m"),
            DeviceRule::new(true, 'c', Some(1), Some(3), "rwm"),
            DeviceRule::new(true, 'c', Some(10), Some(200), "rwm"),
        ];
        let cases: Vec<Vec<DeviceRule>> = vec![
            // The conformance suite's rules.
            vec![
                DeviceRule::new(true, 'c', Some(10), Some(229), "rwm"),
                DeviceRule::new(true, 'b', Some(8), Some(20), "rw"),
                DeviceRule::new(true, 'b', Some(10), Some(200), "r"),
            ],
            // Denying part of a default node.
            vec![DeviceRule::new(false, 'c', Some(1), Some(3), "w")],
            // Deny, then allow again.
            vec![
                DeviceRule::new(false, 'c', Some(1), Some(3), "rwm"),
                DeviceRule::new(true, 'c', Some(1), Some(3), "r"),
            ],
            // Allow all, then a deny the defaults must not undo.
            vec![
                DeviceRule::new(true, 'a', None, None, "rwm"),
                DeviceRule::new(false, 'c', Some(10), Some(200), "rwm"),
            ],
        ];
        for user in cases {
            let mut given = vec![deny_all.clone()];
            given.extend(user.iter().cloned());
            let ours = with_default_allowances(given, defaults.clone());
            assert_eq!(ours[1..=user.len()], user[..], "caller's rules first");
            let mut runc = vec![deny_all.clone()];
            runc.extend(defaults.iter().cloned());
            runc.extend(user.iter().cloned());
            assert_eq!(effect(&ours), effect(&runc), "{user:?}");
        }
        // Without a leading deny-all nothing is added.
        let open = vec![DeviceRule::new(true, 'a', None, None, "rwm")];
        assert_eq!(with_default_allowances(open.clone(), defaults), open);
    }
}
