//! kill -9 trials of container `create` and `rm` through the CLI (issue
//! 13, section 3): the operation is SIGKILLed at a random moment (for
//! `create`, the CLI and the monitor that makes the container, as a crash
//! of the machine's processes would; for `rm`, the CLI, which does the
//! work), then `dunnage system check` runs. Neither operation is crash-safe
//! by itself (a container directory, layer, mount and cgroup are made or
//! removed in steps), so the check may find unfinished containers, lost
//! layers and the image store's leftovers; after `system check --repair`
//! it finds nothing; a container the CLI reported created is whole (it
//! lists, and `rm` removes it); one it reported removed is gone. Every
//! trial ends with nothing of its own left: no mounts below the store, no
//! cgroups below the test's parent, no container state, no monitor.
//!
//! `DUNNAGE_KILL_TRIALS` sets the trials per operation (default 10, the
//! full run uses 100); `DUNNAGE_KILL_SEED` repeats a run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::Fixture;
use dunnage::container::Problem;
use dunnage_testsupport::{Rng, example_binary, require_root};

/// The pids of the monitors working on `root` (`dunnage --dunnage-monitor
/// ROOT`): processes this test started, found by their command line.
fn monitors(root: &Path) -> Vec<i32> {
    let mut want = b"--dunnage-monitor\0".to_vec();
    want.extend_from_slice(root.as_os_str().as_encoded_bytes());
    want.push(0);
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(e.path().join("cmdline"))
            && cmdline.windows(want.len()).any(|w| w == want.as_slice())
        {
            out.push(pid);
        }
    }
    out
}

/// Whether `pid` has ended: gone, or a zombie (its command line is empty
/// earlier, from the moment its exit releases its memory).
fn ended(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    matches!(state, Some("Z" | "X") | None)
}

/// SIGKILL the monitors of `root` and wait (bounded) until they have
/// ended, not only lost their command line.
fn kill_monitors(root: &Path) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut killed = Vec::new();
    loop {
        let pids = monitors(root);
        if pids.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "monitors {pids:?} do not end");
        for pid in pids {
            // Our own monitors (their command line names our store).
            unsafe { libc::kill(pid, libc::SIGKILL) };
            killed.push(pid);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    while let Some(pid) = killed.iter().copied().find(|&p| !ended(p)) {
        assert!(Instant::now() < deadline, "monitor {pid} does not end");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn cli(root: &Path) -> Command {
    let mut c = Command::new(example_binary("dunnage"));
    c.arg("--root").arg(root);
    c
}

/// Run the CLI to the end.
fn run(root: &Path, args: &[&str]) -> Output {
    cli(root).args(args).output().unwrap()
}

fn ok(root: &Path, args: &[&str]) -> String {
    let out = run(root, args);
    assert!(
        out.status.success(),
        "dunnage {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run the CLI, SIGKILLed after `delay` (if still running); its output
/// and whether it finished with success on its own.
fn run_killed(root: &Path, args: &[&str], delay: Duration) -> (String, bool) {
    let child = cli(root)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = dunnage_testsupport::ChildGuard::new(child.id() as i32);
    std::thread::sleep(delay);
    // Our own child, reaped below.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let out = child.wait_with_output().unwrap();
    drop(guard);
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
    )
}

/// The kind of a problem line of `system check` (its first words).
fn kind(line: &str) -> String {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["container", "layer", ..] => "orphan container layer".into(),
        ["container", _, rest @ ..] => format!("container {}", rest.join(" ")),
        [a, b, ..] => format!("{a} {b}"),
        _ => line.to_string(),
    }
}

/// Check, repair, check again: the second check finds nothing. Counts what
/// the first found.
fn check_and_repair(f: &Fixture, what: &str, findings: &mut BTreeMap<String, u64>) {
    let root = f.store.root();
    let out = run(root, &["system", "check"]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    for line in text.lines() {
        *findings
            .entry(format!("{what}: {}", kind(line)))
            .or_default() += 1;
    }
    assert_eq!(
        out.status.success(),
        text.is_empty(),
        "{what}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(root, &["system", "check", "--repair"]);
    let after: Vec<&str> = std::str::from_utf8(&out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("found: "))
        .collect();
    assert!(
        out.status.success() && after.is_empty(),
        "{what}: left after repair: {after:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(ok(root, &["system", "check"]), "");
}

/// The uninterrupted run time of `args`, doubled: kills land within it.
fn span(root: &Path, args: &[&str]) -> (u64, String) {
    let t = Instant::now();
    let out = ok(root, args);
    ((t.elapsed().as_micros() as u64 * 2).max(1), out)
}

fn trials_and_seed() -> (u64, u64) {
    let trials = std::env::var("DUNNAGE_KILL_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let seed = std::env::var("DUNNAGE_KILL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    (trials, seed)
}

#[test]
fn killed_create_and_rm_leave_a_store_that_repairs_clean() {
    require_root!();
    let (trials, seed) = trials_and_seed();
    eprintln!("container kill trials: {trials} per operation, DUNNAGE_KILL_SEED={seed}");
    let mut rng = Rng::new(seed);
    let f = Fixture::new();
    let root = f.store.root().to_path_buf();
    // Built (when stale) before any run is timed.
    example_binary("dunnage");
    let create: [&str; 5] = [
        "create",
        "--cgroup-parent",
        &f.parent,
        common::IMAGE,
        "/bin/true",
    ];
    let mut findings = BTreeMap::new();
    let mut completed: BTreeMap<&str, u64> = BTreeMap::new();

    // create: the CLI and the monitor killed.
    let (create_span, id) = span(&root, &create);
    ok(&root, &["rm", id.trim()]);
    for _ in 0..trials {
        let delay = Duration::from_micros(rng.below(create_span));
        let (out, done) = run_killed(&root, &create, delay);
        kill_monitors(&root);
        check_and_repair(&f, "create", &mut findings);
        let id = out.trim();
        if done {
            *completed.entry("create").or_default() += 1;
            // Reported created: whole, and removable.
            let listed = ok(&root, &["ps", "-a", "-q", "--no-trunc"]);
            assert!(listed.lines().any(|l| l == id), "{id} not in {listed}");
        }
        for left in ok(&root, &["ps", "-a", "-q", "--no-trunc"]).lines() {
            ok(&root, &["rm", "-f", left]);
        }
        f.assert_clean();
        assert_eq!(monitors(&root), Vec::<i32>::new());
    }

    // rm: of an exited container (even trials) or a created one held by
    // its monitor (odd); the CLI killed.
    let make = |created: bool| -> String {
        let id = ok(&root, &create).trim().to_string();
        if !created {
            ok(&root, &["start", &id]);
            ok(&root, &["wait", &id]);
        }
        id
    };
    let first = make(false);
    let (rm_span, _) = span(&root, &["rm", &first]);
    for i in 0..trials {
        let id = make(i % 2 == 1);
        let delay = Duration::from_micros(rng.below(rm_span));
        let (_, done) = run_killed(&root, &["rm", "-f", &id], delay);
        // A created container's monitor records the exit and ends by
        // itself once its process is killed; wait for it (bounded) before
        // judging.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !monitors(&root).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        kill_monitors(&root);
        check_and_repair(&f, "rm", &mut findings);
        let listed = ok(&root, &["ps", "-a", "-q", "--no-trunc"]);
        if done {
            *completed.entry("rm").or_default() += 1;
            assert!(!listed.contains(&id), "{id} removed, still listed");
        }
        for left in listed.lines() {
            ok(&root, &["rm", "-f", left]);
        }
        f.assert_clean();
    }
    eprintln!(
        "container kill trials (seed {seed}): completed before the kill {completed:?}; \
         found before repair {findings:?}"
    );
}

/// What the check finds, made by hand: a directory without `state.json`
/// whose creator is gone, one whose creator lives (skipped), a container
/// whose layer record is gone, a layer record without a container; repair
/// removes the first, third and fourth, and leaves the live create alone.
#[test]
fn check_knows_container_state() {
    require_root!();
    let f = Fixture::new();
    let store = &f.store;
    assert!(store.check().unwrap().is_clean());
    let made = |created: bool| {
        let mut c = f.container().arg("/bin/true").create(store).unwrap();
        if !created {
            c.start().unwrap();
            c.wait().unwrap();
        }
        c.id().to_string()
    };
    // A create killed after its layer and cgroup: state.json gone, creator
    // dead (pid 0 never lives).
    let unfinished = made(false);
    let dir = store.root().join("containers").join(&unfinished);
    std::fs::remove_file(dir.join("state.json")).unwrap();
    std::fs::write(dir.join("creator"), "0 0\n").unwrap();
    // ... killed while making the cgroup's directories: only the last
    // hierarchy has it (a cgroup that `Cgroup::open` cannot open).
    let cgroup = store.get(&unfinished).map(|c| c.spec().cgroup.clone());
    let cgroup = cgroup.unwrap_or_else(|_| {
        let config = std::fs::read(dir.join("config.json")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&config).unwrap();
        v["cgroup"].as_str().unwrap().to_string()
    });
    let dirs = common::cgroup_dirs(&cgroup);
    for d in dirs.iter().take(dirs.len() - 1) {
        if d.is_dir() {
            std::fs::remove_dir(d).unwrap();
        }
    }
    // A create in progress: its creator (this process) lives.
    let in_progress = "c".repeat(64);
    let d = store.root().join("containers").join(&in_progress);
    std::fs::create_dir(&d).unwrap();
    let me = std::process::id() as i32;
    let start = dunnage::container::state::pid_start_time(me).unwrap();
    std::fs::write(d.join("creator"), format!("{me} {start}\n")).unwrap();
    // A remove killed after releasing the layer.
    let lost = made(false);
    store.images().unwrap().layers().unmount_rw(&lost).unwrap();
    store.images().unwrap().layers().remove_rw(&lost).unwrap();
    // A remove killed after deleting the cgroup and the directory, before
    // releasing the layer (not the order `remove` uses: another program's).
    let orphan = made(false);
    let cgroup = store.get(&orphan).unwrap().spec().cgroup.clone();
    for d in common::cgroup_dirs(&cgroup) {
        if d.is_dir() {
            std::fs::remove_dir(d).unwrap();
        }
    }
    std::fs::remove_dir_all(store.root().join("containers").join(&orphan)).unwrap();

    let found = store.check().unwrap().problems;
    assert!(found.contains(&Problem::Unfinished {
        id: unfinished.clone(),
        what: "state.json"
    }));
    assert!(found.contains(&Problem::MissingLayer { id: lost.clone() }));
    assert!(found.contains(&Problem::OrphanLayer { id: orphan.clone() }));
    assert!(
        !found.iter().any(|p| p.to_string().contains(&in_progress)),
        "{found:?}"
    );
    store.repair().unwrap();
    let after = store.check().unwrap();
    assert!(after.is_clean(), "{:?}", after.problems);
    assert!(d.is_dir());
    std::fs::remove_dir_all(&d).unwrap();

    // A damaged container layer record is the image check's to report; it
    // fails neither the check nor the repair.
    let broken = store
        .root()
        .join("image/overlay2/layerdb/mounts")
        .join("d".repeat(64));
    std::fs::create_dir(&broken).unwrap();
    let found = store.check().unwrap().problems;
    assert!(
        found.iter().any(|p| matches!(
            p,
            Problem::Store(dunnage::image::Problem::BrokenContainerLayer { .. })
        )),
        "{found:?}"
    );
    assert!(
        !found
            .iter()
            .any(|p| matches!(p, Problem::OrphanLayer { .. }))
    );
    store.repair().unwrap();
    std::fs::remove_dir(&broken).unwrap();
    assert!(store.check().unwrap().is_clean());
    f.assert_clean();
}

/// `rm` of a container whose cgroup exists in only some hierarchies (an
/// earlier `rm` killed while removing the directories) removes the rest.
#[test]
fn remove_takes_a_partial_cgroup() {
    require_root!();
    let f = Fixture::new();
    let mut c = f.container().arg("/bin/true").create(&f.store).unwrap();
    c.start().unwrap();
    c.wait().unwrap();
    let dirs = common::cgroup_dirs(&c.spec().cgroup);
    for d in dirs.iter().take(dirs.len() - 1) {
        if d.is_dir() {
            std::fs::remove_dir(d).unwrap();
        }
    }
    c.remove(false).unwrap();
    f.assert_clean();
}
