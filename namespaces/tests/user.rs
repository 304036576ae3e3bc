//! User namespaces: id maps written by the parent, as root and as an
//! unprivileged uid (the test binary re-runs itself under `setpriv`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use dunnage_namespaces::{
    Child, Command, Error, IdMap, IdMapError, Kind, Kinds, NamespaceId, SetGroups, join, join_each,
};
use dunnage_testsupport::{TempDir, require_command, require_root};

/// Set for the re-run of this binary as an unprivileged user: the directory
/// to work in.
const HELPER_ENV: &str = "DUNNAGE_TEST_UNPRIVILEGED_DIR";
const NOBODY: u32 = 65534;

fn output(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn world_writable_dir(tag: &str) -> TempDir {
    let dir = TempDir::new(tag).unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

#[test]
fn root_maps_a_range_and_files_belong_to_the_outside_uid() {
    require_root!();
    let dir = world_writable_dir("userns-root");
    let file = dir.join("made-inside");
    let script = format!(
        "id -u; id -g; cat /proc/self/uid_map; touch {}",
        file.display()
    );
    let out = output(
        Command::new("sh")
            .args(["-c", &script])
            .namespaces(Kind::User)
            .uid_map([IdMap::new(0, 100_000, 65_536)])
            .gid_map([IdMap::new(0, 200_000, 65_536)]),
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[..2], ["0", "0"]);
    assert_eq!(
        dunnage_namespaces::idmap::parse(lines[2]).unwrap(),
        vec![IdMap::new(0, 100_000, 65_536)]
    );
    let meta = std::fs::metadata(&file).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (100_000, 200_000));
}

#[test]
fn setgroups_deny_is_written_when_asked() {
    require_root!();
    let out = output(
        Command::new("cat")
            .arg("/proc/self/setgroups")
            .namespaces(Kind::User)
            .uid_map([IdMap::new(0, 0, 1)])
            .gid_map([IdMap::new(0, 0, 1)])
            .setgroups(SetGroups::Deny),
    );
    assert_eq!(out, "deny\n");
}

#[test]
fn malformed_maps_are_refused_before_any_process_starts() {
    let bad = [
        (
            vec![IdMap::new(0, 1000, 10), IdMap::new(5, 5000, 1)],
            "overlap inside",
        ),
        (
            vec![IdMap::new(0, 1000, 10), IdMap::new(20, 1009, 1)],
            "overlap outside",
        ),
        (vec![IdMap::new(0, 1000, 0)], "zero ids"),
        (vec![IdMap::new(u32::MAX - 1, 0, 2)], "past the largest id"),
    ];
    for (map, why) in bad {
        let e = Command::new("true")
            .namespaces(Kind::User)
            .uid_map(map)
            .spawn()
            .unwrap_err();
        assert!(matches!(e, Error::IdMap { which: "uid", .. }), "{why}: {e}");
    }
    let e = Command::new("true")
        .uid_map([IdMap::new(0, 0, 1)])
        .spawn()
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::NeedsNamespace {
                kind: Kind::User,
                ..
            }
        ),
        "maps without a user ns: {e}"
    );
    assert_eq!(
        dunnage_namespaces::idmap::parse("0 0 1\n1 0 1"),
        Err(IdMapError::OverlapOutside(
            IdMap::new(0, 0, 1),
            IdMap::new(1, 0, 1)
        ))
    );
}

/// Run the helper test `helper` of this binary as uid/gid 65534 with no
/// capabilities, working in `dir`, and check that it ran and passed.
///
/// With `subids` (files in the format of `/etc/subuid` and `/etc/subgid`)
/// the helper runs in a private mount namespace where these files are
/// bind-mounted over `/etc/subuid` and `/etc/subgid`: the setuid
/// newuidmap/newgidmap read them there, and the host's files are never
/// written.
fn run_helper_as_nobody(helper: &str, dir: &TempDir, subids: Option<(&Path, &Path)>) {
    // A copy of this binary that uid 65534 can surely execute.
    let exe = dir.join(format!("test-binary-{helper}"));
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = || {
        let mut cmd = match subids {
            None => std::process::Command::new("setpriv"),
            Some((subuid, subgid)) => {
                let mut cmd = std::process::Command::new("unshare");
                cmd.args(["-m", "--propagation", "private", "sh", "-c"])
                    .arg(
                        "mount --bind \"$1\" /etc/subuid && \
                         mount --bind \"$2\" /etc/subgid && \
                         shift 2 && exec setpriv \"$@\"",
                    )
                    .arg("sh")
                    .args([subuid, subgid]);
                cmd
            }
        };
        cmd.args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&exe)
        .args(["--exact", helper, "--nocapture", "--test-threads=1"])
        .env(HELPER_ENV, dir.path())
        .output()
        .unwrap()
    };
    // setpriv's exec of a just-written file may meet "text busy" while a
    // process forked by another test thread still holds the writer's fd.
    let mut out = run();
    for _ in 0..50 {
        if out.status.success() || !String::from_utf8_lossy(&out.stderr).contains("busy") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        out = run();
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("HELPER-RAN"), "{text}");
}

/// Run the helper test below as uid/gid 65534 with no capabilities.
#[test]
fn an_unprivileged_user_gets_root_in_its_own_user_namespace() {
    require_root!();
    require_command!("setpriv");
    let dir = world_writable_dir("userns-unpriv");
    run_helper_as_nobody("unprivileged_helper", &dir, None);
    let meta = std::fs::metadata(dir.join("made-inside")).unwrap();
    assert_eq!(
        (meta.uid(), meta.gid()),
        (NOBODY, NOBODY),
        "owned by the outside uid"
    );
}

/// Does nothing unless run by the test above.
#[test]
fn unprivileged_helper() {
    let Some(dir) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    assert_eq!(unsafe { libc::geteuid() }, NOBODY);
    // Without a user namespace the kernel refuses, and says why.
    let e = Command::new("true")
        .namespaces(Kind::Net)
        .spawn()
        .unwrap_err();
    assert!(matches!(e, Error::Permission { .. }), "{e}");
    assert!(e.to_string().contains("CAP_SYS_ADMIN"), "{e}");
    // With one, the caller's own uid maps to root, and the other kinds
    // (owned by the new user namespace) work too.
    let script = format!(
        "id -u; hostname; echo $$; cat /proc/self/setgroups; touch {}/made-inside",
        dir.display()
    );
    let out = output(
        Command::new("sh")
            .args(["-c", &script])
            .namespaces(Kind::User | Kind::Uts | Kind::Pid | Kind::Net | Kind::Ipc)
            .uid_map([IdMap::new(0, NOBODY, 1)])
            .gid_map([IdMap::new(0, NOBODY, 1)])
            .hostname("dunnage-test-unpriv")
            .mount_proc("/proc")
            .loopback_up(true),
    );
    assert_eq!(out, "0\ndunnage-test-unpriv\n1\ndeny\n");
    // Mapping an id that is not ours needs newuidmap and /etc/subuid.
    let e = Command::new("true")
        .namespaces(Kind::User)
        .uid_map([IdMap::new(0, 0, 1)])
        .spawn()
        .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    println!("HELPER-RAN");
}

/// The first id of each subordinate range the tests below grant uid 65534,
/// and the counts: two uid ranges and two gid ranges.
const SUBUIDS: [(u32, u32); 2] = [(1_700_000_000, 1000), (1_700_100_000, 500)];
const SUBGIDS: [(u32, u32); 2] = [(1_800_000_000, 1000), (1_800_100_000, 500)];

fn subid_lines(ranges: &[(u32, u32)]) -> String {
    ranges
        .iter()
        .map(|(start, count)| format!("{NOBODY}:{start}:{count}\n"))
        .collect()
}

/// The uid or gid map the helper below asks for: its own id as 0, then the
/// two subordinate ranges at 1 and 1001.
fn map_with_subids(ranges: &[(u32, u32); 2]) -> Vec<IdMap> {
    vec![
        IdMap::new(0, NOBODY, 1),
        IdMap::new(1, ranges[0].0, ranges[0].1),
        IdMap::new(1001, ranges[1].0, ranges[1].1),
    ]
}

/// newuidmap/newgidmap write maps of several ranges for uid 65534 from
/// subordinate id files this test bind-mounts over /etc/subuid and
/// /etc/subgid in a private mount namespace (the host's files stay as
/// they are).
#[test]
fn an_unprivileged_user_maps_several_subordinate_ranges_with_newuidmap() {
    require_root!();
    require_command!("setpriv");
    require_command!("unshare");
    require_command!("newuidmap");
    require_command!("newgidmap");
    let test = module_path!();
    if !Path::new("/etc/subuid").is_file() || !Path::new("/etc/subgid").is_file() {
        // A bind mount needs an existing target, and we never create files in /etc.
        dunnage_testsupport::skip(test, "/etc/subuid or /etc/subgid does not exist");
        return;
    }
    let dir = world_writable_dir("userns-subid");
    let subuid = dir.join("subuid");
    let subgid = dir.join("subgid");
    std::fs::write(&subuid, subid_lines(&SUBUIDS)).unwrap();
    std::fs::write(&subgid, subid_lines(&SUBGIDS)).unwrap();
    let before = (
        std::fs::read("/etc/subuid").ok(),
        std::fs::read("/etc/subgid").ok(),
    );
    run_helper_as_nobody("subid_helper", &dir, Some((&subuid, &subgid)));
    assert_eq!(
        (
            std::fs::read("/etc/subuid").ok(),
            std::fs::read("/etc/subgid").ok()
        ),
        before,
        "the host's files are untouched"
    );
    // Files made inside by ids 1 and 1001 belong to the two ranges outside.
    for (name, range) in [("as-1", 0), ("as-1001", 1)] {
        let meta = std::fs::metadata(dir.join(name)).unwrap();
        assert_eq!(
            (meta.uid(), meta.gid()),
            (SUBUIDS[range].0, SUBGIDS[range].0),
            "{name}"
        );
    }
}

/// Does nothing unless run by the test above.
#[test]
fn subid_helper() {
    let Some(dir) = std::env::var_os(HELPER_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    assert_eq!(unsafe { libc::geteuid() }, NOBODY);
    let script = format!(
        "id -u; cat /proc/self/uid_map /proc/self/gid_map; \
         setpriv --reuid=1 --regid=1 --keep-groups touch {d}/as-1; \
         setpriv --reuid=1001 --regid=1001 --keep-groups touch {d}/as-1001",
        d = dir.display()
    );
    let out = output(
        Command::new("sh")
            .args(["-c", &script])
            .namespaces(Kind::User)
            .uid_map(map_with_subids(&SUBUIDS))
            .gid_map(map_with_subids(&SUBGIDS)),
    );
    let mut lines = out.lines();
    assert_eq!(lines.next(), Some("0"), "{out}");
    let rest: Vec<&str> = lines.collect();
    assert_eq!(rest.len(), 6, "{out}");
    assert_eq!(
        dunnage_namespaces::idmap::parse(&rest[..3].join("\n")).unwrap(),
        map_with_subids(&SUBUIDS),
        "{out}"
    );
    assert_eq!(
        dunnage_namespaces::idmap::parse(&rest[3..].join("\n")).unwrap(),
        map_with_subids(&SUBGIDS),
        "{out}"
    );
    println!("HELPER-RAN");
}

/// A child in new namespaces, killed and reaped on drop.
struct Sleeper(Child);

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run `f` in a forked child of this (multithreaded) test process: setns
/// into a user namespace needs a single-threaded caller. The child uses
/// glibc's fork-safe malloc; it sends back what `f` returns (or that it
/// panicked) through a pipe.
fn in_forked_child(f: impl FnOnce() -> String) -> String {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        dunnage_testsupport::close_fds_except(&mut [fds[1]]);
        let text = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .unwrap_or_else(|_| "PANIC".to_owned());
        unsafe {
            libc::write(fds[1], text.as_ptr().cast(), text.len());
            libc::_exit(0);
        }
    }
    unsafe { libc::close(fds[1]) };
    let mut text = String::new();
    unsafe { std::fs::File::from_raw_fd(fds[0]) }
        .read_to_string(&mut text)
        .unwrap();
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    text
}

fn hostname() -> String {
    let mut buf = [0u8; 65];
    assert_eq!(unsafe { libc::gethostname(buf.as_mut_ptr().cast(), 64) }, 0);
    let end = buf.iter().position(|b| *b == 0).unwrap();
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Join the user and UTS namespaces of a sleeping child with `join` (pidfd,
/// all at once) and with `join_each` (one file at a time, ordered by
/// privilege), each from a fresh single-threaded process; check the
/// hostname, the user namespace and the uid seen there.
fn join_user_and_uts(uid_map: IdMap, uid_inside: u32) {
    let name = dunnage_testsupport::unique_name("join-user");
    let sleeper = Sleeper(
        Command::new("sleep")
            .arg("60")
            .namespaces(Kind::User | Kind::Uts)
            .uid_map([uid_map])
            .gid_map([uid_map])
            .hostname(&name)
            .spawn()
            .unwrap(),
    );
    let pid = sleeper.0.id();
    let user_ns = NamespaceId::of(pid, Kind::User).unwrap();
    type Join = fn(i32, Kinds) -> dunnage_namespaces::Result<()>;
    for (how, f) in [("join", join as Join), ("join_each", join_each as Join)] {
        let got = in_forked_child(|| match f(pid, Kind::User | Kind::Uts) {
            Ok(()) => format!(
                "{} {} {}",
                hostname(),
                NamespaceId::of_self(Kind::User).unwrap(),
                unsafe { libc::getuid() }
            ),
            Err(e) => format!("ERROR {e}"),
        });
        assert_eq!(got, format!("{name} {user_ns} {uid_inside}"), "{how}");
    }
}

#[test]
fn root_joins_a_user_and_a_uts_namespace_at_once_and_one_by_one() {
    require_root!();
    // Root's uid 0 is not mapped there: it shows as the overflow uid.
    join_user_and_uts(IdMap::new(0, 100_000, 65_536), NOBODY);
}

/// As uid 65534 (the helper below), joining a user namespace that uid owns.
#[test]
fn an_unprivileged_user_joins_its_user_and_uts_namespaces() {
    require_root!();
    require_command!("setpriv");
    let dir = world_writable_dir("userns-join");
    run_helper_as_nobody("join_helper", &dir, None);
}

/// Does nothing unless run by the test above.
#[test]
fn join_helper() {
    if std::env::var_os(HELPER_ENV).is_none() {
        return;
    }
    assert_eq!(unsafe { libc::geteuid() }, NOBODY);
    join_user_and_uts(IdMap::new(0, NOBODY, 1), 0);
    println!("HELPER-RAN");
}
