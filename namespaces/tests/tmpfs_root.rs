//! `Command::tmpfs_rootfs`, `RootOp`s in order with the mount table, and
//! `init_process`, against the real kernel.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;

use dunnage_namespaces::{Command, Error, Kind, Mount, RootOp};
use dunnage_testsupport::require_root;

/// `sh` on a tmpfs root with the host's /usr bound read-only.
fn sandbox(script: &str) -> Command {
    let mut cmd = Command::new("/usr/bin/sh");
    cmd.args(["-c", script])
        .namespaces(Kind::Pid | Kind::Mount)
        .tmpfs_rootfs()
        .mount(Mount::bind("/usr", "/usr", &["rbind", "ro"]));
    for (link, target) in [
        ("/bin", "usr/bin"),
        ("/lib", "usr/lib"),
        ("/lib64", "usr/lib64"),
    ] {
        cmd.root_op(RootOp::Symlink {
            target: target.into(),
            link: link.into(),
        });
    }
    cmd.mount(Mount::new("proc", "/proc", &["nosuid", "nodev", "noexec"]));
    cmd
}

fn out(cmd: &mut Command) -> String {
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_tmpfs_root_holds_only_what_was_asked_and_ops_run_in_order() {
    require_root!();
    let mut cmd = sandbox(
        "ls -a /; stat -c '%n %a' / /t/d /x; cat /t/f; grep -c ' /t ' /proc/self/mountinfo",
    );
    // A directory made before the tmpfs at /t is hidden by it; the one
    // made after is inside it.
    cmd.root_op(RootOp::Dir {
        path: "/t/hidden".into(),
        mode: 0o755,
    })
    .mount(Mount::new("tmpfs", "/t", &["mode=0755"]))
    .root_op(RootOp::Dir {
        path: "/t/d".into(),
        mode: 0o700,
    })
    .root_op(RootOp::Dir {
        path: "/x".into(),
        mode: 0o755,
    })
    .root_op(RootOp::Chmod {
        path: "/x".into(),
        mode: 0o711,
    });
    // The data is written and the write end closed before the spawn (a
    // write end open in the parent would be open in the child too).
    let (r, mut w) = std::io::pipe().unwrap();
    std::io::Write::write_all(&mut w, b"data\n").unwrap();
    drop(w);
    cmd.root_op(RootOp::File {
        path: "/t/f".into(),
        source: OwnedFd::from(r),
        mode: 0o600,
    });
    let text = out(&mut cmd);
    assert_eq!(
        text,
        ".\n..\nbin\nlib\nlib64\nproc\nt\nusr\nx\n/ 755\n/t/d 700\n/x 711\ndata\n1\n"
    );
}

#[test]
fn the_init_is_pid_1_and_passes_the_status_on() {
    require_root!();
    let text = out(sandbox("echo $$; cat /proc/1/cmdline | tr '\\0' ' '").init_process(true));
    // pid 1 is the init: a copy of this test program.
    assert!(
        text.starts_with("2\n") && text.contains("tmpfs_root"),
        "{text}"
    );
    // Without the init the program is pid 1.
    assert_eq!(out(&mut sandbox("echo $$")), "1\n");
    let status = sandbox("exit 9").init_process(true).status().unwrap();
    assert_eq!(status.code(), Some(9));
    // A death by signal comes out as 128 + the signal, as bwrap's init.
    let status = sandbox("kill -TERM $$")
        .init_process(true)
        .status()
        .unwrap();
    assert_eq!((status.code(), status.signal()), (Some(143), None));
    // An exec failure under the init is still a typed error.
    let err = Command::new("/nonexistent")
        .namespaces(Kind::Pid | Kind::Mount)
        .tmpfs_rootfs()
        .init_process(true)
        .status()
        .unwrap_err();
    assert!(matches!(err, Error::Exec { .. }), "{err:?}");
}

#[test]
fn bad_root_ops_fail_before_clone() {
    for op in [
        RootOp::Dir {
            path: "relative".into(),
            mode: 0o755,
        },
        RootOp::Chmod {
            path: "/x".into(),
            mode: 0o17777,
        },
        RootOp::Symlink {
            target: "a\0b".into(),
            link: "/l".into(),
        },
    ] {
        let err = Command::new("/bin/true")
            .tmpfs_rootfs()
            .root_op(op)
            .status()
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidMount { .. } | Error::NulByte { .. }),
            "{err:?}"
        );
    }
}

/// A pipe's read end holding `data`, its write end closed.
fn data_pipe(data: &[u8]) -> OwnedFd {
    let (r, mut w) = std::io::pipe().unwrap();
    std::io::Write::write_all(&mut w, data).unwrap();
    OwnedFd::from(r)
}

/// `RootOp::BindData`: the data is a mount of an unlinked file (link
/// count 0, as bubblewrap's `--bind-data`), read-only when asked, and the
/// temporary file is not in the new root.
#[test]
fn bound_data_is_an_unlinked_file() {
    require_root!();
    let mut cmd = sandbox(
        "stat -c '%n %h %a %s' /d /r; cat /d /r; ls -a /; \
         echo x >> /d && echo d writable; echo x >> /r 2>/dev/null || echo r read-only",
    );
    cmd.root_op(RootOp::BindData {
        path: "/d".into(),
        source: data_pipe(b"one\n"),
        mode: 0o640,
        read_only: false,
    })
    .root_op(RootOp::BindData {
        path: "/r".into(),
        source: data_pipe(b"two\n"),
        mode: 0o600,
        read_only: true,
    });
    assert_eq!(
        out(&mut cmd),
        "/d 0 640 4\n/r 0 600 4\none\ntwo\n.\n..\nbin\nd\nlib\nlib64\nproc\nr\nusr\n\
         d writable\nr read-only\n"
    );
}

/// Bound data needs the tmpfs root that holds the unlinked file: with a
/// rootfs directory it is refused before anything is made.
#[test]
fn bound_data_without_a_tmpfs_root_is_refused_before_clone() {
    let dir = dunnage_testsupport::TempDir::new("bind-data-rootfs").unwrap();
    let err = Command::new("/bin/true")
        .rootfs(dir.path())
        .root_op(RootOp::BindData {
            path: "/d".into(),
            source: data_pipe(b"x"),
            mode: 0o600,
            read_only: false,
        })
        .status()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidMount {
                reason: dunnage_namespaces::MountError::NeedsTmpfsRoot,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

/// `inner_user_namespace`: the setup runs as root of the new user
/// namespace (its devpts is owned by that root), the program in a nested
/// one where its ids map onto it, so the devpts shows as owned by them.
#[test]
fn an_inner_user_namespace_owns_what_the_setup_made() {
    require_root!();
    let mut cmd = sandbox(
        "stat -c '%u %g' /pts /pts/ptmx; cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g",
    );
    let map = |outside| {
        vec![dunnage_namespaces::IdMap {
            inside: 0,
            outside,
            count: 1,
        }]
    };
    cmd.namespaces(Kind::User | Kind::Pid | Kind::Mount)
        .uid_map(map(0))
        .gid_map(map(0))
        .mount(Mount::new(
            "devpts",
            "/pts",
            &["newinstance", "ptmxmode=0666"],
        ))
        .inner_user_namespace(5, 6);
    let text = out(&mut cmd);
    let words: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        words,
        ["5", "6", "5", "6", "5", "0", "1", "6", "0", "1", "5", "6"],
        "{text}"
    );
}

/// An inner user namespace needs a new one whose maps have 0 inside.
#[test]
fn an_inner_user_namespace_without_a_new_one_is_refused() {
    let err = Command::new("/bin/true")
        .inner_user_namespace(5, 6)
        .status()
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::NeedsNamespace {
                kind: Kind::User,
                ..
            }
        ),
        "{err:?}"
    );
}
