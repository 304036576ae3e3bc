//! User namespaces: id maps written by the parent, as root and as an
//! unprivileged uid (the test binary re-runs itself under `setpriv`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use dunnage_namespaces::{Command, Error, IdMap, IdMapError, Kind, SetGroups};
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
        matches!(e, Error::InvalidInput(_)),
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

/// Run the helper test below as uid/gid 65534 with no capabilities.
#[test]
fn an_unprivileged_user_gets_root_in_its_own_user_namespace() {
    require_root!();
    require_command!("setpriv");
    let dir = world_writable_dir("userns-unpriv");
    // A copy of this binary that uid 65534 can surely execute.
    let exe = dir.join("test-binary");
    std::fs::copy(std::env::current_exe().unwrap(), &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = || {
        std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(&exe)
            .args([
                "--exact",
                "unprivileged_helper",
                "--nocapture",
                "--test-threads=1",
            ])
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
