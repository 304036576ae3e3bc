//! `examples/dunnage.rs`, the docker-like image CLI, run as a program: its
//! output columns, its errors, its use on a stopped dockerd's data-root,
//! and the README's main job (`examples/quickstart.sh`). The container
//! verbs are tested against docker in `tests/dunnage_vs_docker.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use dunnage_testsupport::{Dockerd, TempDir, example_binary, require_command, require_root};

/// Run the example with `--root root` and `args`.
fn dunnage(root: &Path, args: &[&str]) -> Output {
    Command::new(example_binary("dunnage"))
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

/// Run it, asserting success; returns stdout.
fn ok(root: &Path, args: &[&str]) -> String {
    let out = dunnage(root, args);
    assert!(
        out.status.success(),
        "dunnage {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Run it, asserting exit status 1, nothing on stdout and exactly one
/// line on stderr; returns that line.
fn fails(root: &Path, args: &[&str]) -> String {
    let out = dunnage(root, args);
    assert_eq!(out.status.code(), Some(1), "dunnage {args:?}");
    assert!(out.stdout.is_empty(), "dunnage {args:?} printed to stdout");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "dunnage {args:?}: {err:?}");
    assert!(
        err.starts_with("dunnage: ") && err.ends_with('\n'),
        "{err:?}"
    );
    err.trim_end().to_string()
}

/// The top-level keys of each object of an inspect output, in order.
fn top_keys(inspect: &str) -> Vec<String> {
    inspect
        .lines()
        .filter(|l| l.starts_with("        \"") && !l.starts_with("         "))
        .map(|l| l.trim().split('"').nth(1).unwrap().to_string())
        .collect()
}

/// A rootfs tarball of the host's static busybox with a few applets.
fn busybox_rootfs(dir: &Path) -> PathBuf {
    let root = dir.join("rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    for app in ["sh", "ls", "cat"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(app)).unwrap();
    }
    std::fs::write(root.join("motd"), b"dunnage\n").unwrap();
    let tar = dir.join("rootfs.tar");
    let status = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    tar
}

/// Split a table line into its cells (columns are separated by at least
/// three spaces, like the docker CLI's tabwriter).
fn cells(line: &str) -> Vec<String> {
    line.split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect()
}

/// A store with `quickstart/bb:1` imported from busybox, and that image
/// saved to `<dir>/bb.tar`. Returns (store root, archive, full image ID).
fn imported(dir: &TempDir) -> (PathBuf, PathBuf, String) {
    let root = dir.join("build");
    let rootfs = busybox_rootfs(dir.path());
    let id = ok(
        &root,
        &[
            "import",
            "-c",
            "CMD [\"/bin/sh\"]",
            "-m",
            "from the host",
            rootfs.to_str().unwrap(),
            "quickstart/bb:1",
        ],
    );
    let id = id.trim().to_string();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");
    let archive = dir.join("bb.tar");
    ok(
        &root,
        &["save", "-o", archive.to_str().unwrap(), "quickstart/bb:1"],
    );
    (root, archive, id)
}

#[test]
fn the_readme_main_job_runs() {
    require_root!();
    require_command!("tar");
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(workspace.join("README.md")).unwrap();
    let setup = readme
        .split("## Set up and run")
        .nth(1)
        .expect("README has a Set up and run section");
    // Exactly two commands: the main job, then the tests.
    let blocks: Vec<&str> = setup
        .split("```sh\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    let commands: Vec<&str> = blocks
        .iter()
        .take(2)
        .flat_map(|b| b.lines())
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .collect();
    assert_eq!(commands.len(), 2, "{commands:?}");
    let main_job = commands[0];
    assert!(main_job.contains("examples/quickstart.sh"), "{main_job}");
    let tmp = TempDir::new("readme-main-job").unwrap();
    let out = Command::new("bash")
        .arg("-c")
        .arg(main_job)
        .current_dir(workspace)
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{main_job}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("\nLoaded image: quickstart/busybox:latest\n"),
        "{text}"
    );
    let lines: Vec<&str> = text.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.starts_with("REPOSITORY"))
        .unwrap();
    assert_eq!(
        cells(lines[header]),
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    );
    let row = cells(lines[header + 1]);
    assert_eq!(row[..2], ["quickstart/busybox", "latest"], "{text}");
    assert!(text.contains("busybox from the host"), "{text}");
    // The container ran: its output, in a uts namespace whose hostname is
    // the short container ID, as root; then `ps -a` lists nothing (--rm).
    let ran = text
        .split("$ dunnage run --rm quickstart/busybox")
        .nth(1)
        .expect("the script runs a container");
    let ran: Vec<&str> = ran.lines().skip(1).collect();
    assert_eq!(ran[0], "hello from dunnage", "{text}");
    assert!(
        ran[1].len() == 12 && ran[1].bytes().all(|b| b.is_ascii_hexdigit()),
        "hostname: {text}"
    );
    assert!(ran[2].starts_with("uid=0 gid=0"), "{text}");
    assert!(ran.contains(&"proc") && ran.contains(&"etc"), "{text}");
    let ps = ran.iter().position(|l| *l == "$ dunnage ps -a").unwrap();
    assert_eq!(cells(ran[ps + 1])[0], "CONTAINER ID", "{text}");
    assert_eq!(ran.len(), ps + 2, "a container left: {text}");
    // The script cleaned up after itself.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn load_prints_what_it_loaded_and_images_lists_it_like_docker() {
    require_root!();
    let dir = TempDir::new("cli-load").unwrap();
    let (_, archive, id) = imported(&dir);
    let store = dir.join("store");
    let out = ok(&store, &["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out, "Loaded image: quickstart/bb:1\n");
    // Loading again is idempotent.
    assert_eq!(
        ok(&store, &["load", "-q", "-i", archive.to_str().unwrap()]),
        out
    );
    let out = ok(&store, &["images"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    // Columns as the docker CLI pads them: widest cell + 3, at least 10.
    assert!(
        lines[0].starts_with("REPOSITORY      TAG       IMAGE ID       CREATED   "),
        "{out}"
    );
    assert_eq!(
        cells(lines[0]),
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]
    );
    let row = cells(lines[1]);
    assert_eq!(row.len(), 5, "{out}");
    assert_eq!(row[..3], ["quickstart/bb", "1", &id[7..19]]);
    assert!(row[3].ends_with(" ago"), "{out}");
    let busybox = std::fs::metadata("/bin/busybox").unwrap().len() as f64;
    let size: f64 = row[4].trim_end_matches("MB").parse().unwrap();
    assert!((size * 1e6 - busybox).abs() < 0.05e6, "{out}");
    assert_eq!(ok(&store, &["images", "-q"]), format!("{}\n", &id[7..19]));
    assert!(ok(&store, &["images", "--no-trunc"]).contains(&id));
    // An archive saved by ID carries no tag.
    let by_id = dir.join("by-id.tar");
    let fresh = dir.join("fresh");
    ok(&store, &["save", "-o", by_id.to_str().unwrap(), &id[7..19]]);
    assert_eq!(
        ok(&fresh, &["load", "-i", by_id.to_str().unwrap()]),
        format!("Loaded image ID: {id}\n")
    );
    let out = ok(&fresh, &["images"]);
    assert_eq!(
        cells(out.lines().nth(1).unwrap())[..3],
        ["<none>", "<none>", &id[7..19]]
    );
}

#[test]
fn history_tag_rmi_layers_and_inspect() {
    require_root!();
    let dir = TempDir::new("cli-verbs").unwrap();
    let (root, _, id) = imported(&dir);

    let out = ok(&root, &["history", "quickstart/bb:1"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(
        cells(lines[0]),
        ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
    );
    let row = cells(lines[1]);
    assert_eq!(row[0], &id[7..19]);
    assert!(row[1].ends_with(" ago"), "{out}");
    assert_eq!(row.last().unwrap(), "from the host");

    // layers: one layer, its chainID is its diffID; inspect agrees.
    let out = ok(&root, &["layers"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert_eq!(cells(lines[0]), ["CHAIN ID", "DIFF ID", "CACHE ID", "SIZE"]);
    let layer = cells(lines[1]);
    assert_eq!(layer[0], layer[1]);
    assert_eq!(layer[2].len(), 64, "{out}");
    let inspect = ok(&root, &["inspect", "quickstart/bb:1"]);
    // Indented by four and in the docker CLI's key order.
    assert!(
        inspect.starts_with("[\n    {\n        \"Id\": "),
        "{inspect}"
    );
    assert_eq!(
        top_keys(&inspect),
        [
            "Id",
            "RepoTags",
            "RepoDigests",
            "Parent",
            "Comment",
            "Created",
            "Container",
            "ContainerConfig",
            "DockerVersion",
            "Author",
            "Config",
            "Architecture",
            "Os",
            "Size",
            "VirtualSize",
            "GraphDriver",
            "RootFS",
            "Metadata"
        ]
    );
    let v: serde_json::Value = serde_json::from_str(&inspect).unwrap();
    assert_eq!(v[0]["Id"], id.as_str());
    assert_eq!(v[0]["RepoTags"], serde_json::json!(["quickstart/bb:1"]));
    assert_eq!(v[0]["RootFS"]["Layers"][0], layer[1].as_str());
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["/bin/sh"]));
    assert_eq!(v[0]["GraphDriver"]["Name"], "overlay2");
    let upper = v[0]["GraphDriver"]["Data"]["UpperDir"].as_str().unwrap();
    assert!(upper.contains(&layer[2]), "{upper}");

    // tag, then rmi by tag untags first and deletes with the last tag.
    ok(&root, &["tag", "quickstart/bb:1", "other:2"]);
    let out = ok(&root, &["images"]);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(out.contains("\nother "), "{out}");
    assert_eq!(ok(&root, &["rmi", "other:2"]), "Untagged: other:2\n");
    assert_eq!(
        ok(&root, &["rmi", "quickstart/bb:1"]),
        format!("Untagged: quickstart/bb:1\nDeleted: {id}\n")
    );
    assert_eq!(ok(&root, &["images"]).lines().count(), 1);
    assert_eq!(ok(&root, &["layers"]).lines().count(), 1);
}

#[test]
fn a_cli_mount_outlives_its_process_and_keeps_its_image_from_rmi_and_prune() {
    require_root!();
    let dir = TempDir::new("cli-mount").unwrap();
    let (root, _, id) = imported(&dir);
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _guard = dunnage_testsupport::MountGuard::new(&mnt);
    // `dunnage mount` exits at once; queries and writers opening the store
    // afterwards leave the mount alone.
    ok(&root, &["mount", "quickstart/bb:1", mnt.to_str().unwrap()]);
    ok(&root, &["images"]);
    ok(&root, &["tag", "quickstart/bb:1", "other:1"]);
    ok(&root, &["rmi", "other:1"]);
    assert!(mnt.join("bin/busybox").is_file(), "the mount went away");
    let short = &id[7..19];
    assert_eq!(
        fails(&root, &["rmi", "quickstart/bb:1"]),
        format!(
            "dunnage: conflict: unable to remove repository reference \"quickstart/bb:1\" (must force) - mount at {} is using its referenced image {short}",
            std::fs::canonicalize(&mnt).unwrap().display()
        )
    );
    assert!(fails(&root, &["rmi", "-f", &id]).ends_with(&format!(
        "unable to delete {short} (cannot be forced) - image is being used by mount at {}",
        std::fs::canonicalize(&mnt).unwrap().display()
    )));
    // Forced by reference: untagged only; prune keeps the used image.
    assert_eq!(
        ok(&root, &["rmi", "-f", "quickstart/bb:1"]),
        "Untagged: quickstart/bb:1\n"
    );
    assert_eq!(ok(&root, &["prune"]), "");
    assert!(mnt.join("bin/busybox").is_file());
    assert_eq!(ok(&root, &["layers"]).lines().count(), 2);
    // Unmounted: prune deletes it and its layer.
    ok(&root, &["umount", mnt.to_str().unwrap()]);
    assert!(!mnt.join("bin/busybox").exists());
    assert_eq!(ok(&root, &["prune"]), format!("deleted: {id}\n"));
    assert_eq!(ok(&root, &["layers"]).lines().count(), 1);
}

#[test]
fn mount_racing_rmi_either_mounts_whole_or_fails_cleanly() {
    require_root!();
    let dir = TempDir::new("cli-mount-race").unwrap();
    let (_, archive, _) = imported(&dir);
    let root = dir.join("race");
    let mnt = dir.join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let _guard = dunnage_testsupport::MountGuard::new(&mnt);
    let spawn = |args: &[&str]| {
        Command::new(example_binary("dunnage"))
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (mut mounted, mut refused) = (0, 0);
    for i in 0..12 {
        ok(&root, &["load", "-q", "-i", archive.to_str().unwrap()]);
        let mount = ["mount", "quickstart/bb:1", mnt.to_str().unwrap()];
        let rmi = ["rmi", "-f", "quickstart/bb:1"];
        // Alternate which one starts first.
        let (m, r) = if i % 2 == 0 {
            let m = spawn(&mount);
            (m, spawn(&rmi))
        } else {
            let r = spawn(&rmi);
            (spawn(&mount), r)
        };
        let (m, r) = (m.wait_with_output().unwrap(), r.wait_with_output().unwrap());
        assert!(r.status.code().is_some_and(|c| c <= 1), "{r:?}");
        if m.status.success() {
            mounted += 1;
            // Whatever rmi did, the mounted tree is whole.
            assert!(mnt.join("bin/busybox").is_file());
            assert!(mnt.join("motd").is_file());
            ok(&root, &["umount", mnt.to_str().unwrap()]);
        } else {
            refused += 1;
            let err = String::from_utf8_lossy(&m.stderr);
            assert_eq!(m.status.code(), Some(1), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
            assert!(!mnt.join("bin").exists(), "a failed mount left a mount");
        }
        // The tag may be gone already; the image, if left, is dangling.
        let _ = dunnage(&root, &["rmi", "-f", "quickstart/bb:1"]);
        ok(&root, &["prune"]);
        assert_eq!(ok(&root, &["images", "-q"]), "");
        assert_eq!(ok(&root, &["layers"]).lines().count(), 1, "layers leaked");
    }
    eprintln!("mounted {mounted}, refused {refused}");
}

#[test]
fn bad_input_exits_1_with_one_line_on_stderr() {
    require_root!();
    let dir = TempDir::new("cli-errors").unwrap();
    let root = dir.join("root");
    let garbage = dir.join("garbage.tar");
    std::fs::write(&garbage, b"not an archive").unwrap();
    assert_eq!(
        fails(&root, &["rmi", "nosuch"]),
        "dunnage: No such image: nosuch"
    );
    fails(&root, &["history", "nosuch:1"]);
    // inspect answers as docker's: `[]`, then the name not found.
    let out = dunnage(&root, &["inspect", "sha256:0123"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[]\n");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: No such object: sha256:0123\n"
    );
    fails(&root, &["tag", "nosuch", "x:1"]);
    fails(&root, &["load", "-i", "/nonexistent/dunnage-test.tar"]);
    let err = fails(&root, &["load", "-i", garbage.to_str().unwrap()]);
    assert!(err.contains("garbage.tar"), "{err}");
    fails(&root, &["import", garbage.to_str().unwrap(), "Bad:Ref"]);
    fails(&root, &["save", "-o", dir.join("x.tar").to_str().unwrap()]);
    fails(&root, &["frobnicate"]);
    fails(&root, &["images", "--bogus"]);
    assert!(!dir.join("x.tar").exists());
    // Nothing was stored.
    assert_eq!(ok(&root, &["images"]).lines().count(), 1);
}

#[test]
fn images_and_save_read_a_stopped_dockerds_data_root() {
    require_root!();
    require_command!("dockerd");
    let dir = TempDir::new("cli-dockerd").unwrap();
    let rootfs = busybox_rootfs(dir.path());
    let d = Dockerd::start("cli").unwrap();
    let out = d
        .docker()
        .args(["import", "-c", "CMD [\"sh\"]"])
        .arg(&rootfs)
        .arg("dunnage-test/cli:1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let id = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let docker_images = d.docker().arg("images").output().unwrap();
    let docker_images = String::from_utf8(docker_images.stdout).unwrap();
    let docker_inspect = d
        .docker()
        .args(["image", "inspect", "dunnage-test/cli:1"])
        .output()
        .unwrap();
    let docker_inspect = String::from_utf8(docker_inspect.stdout).unwrap();
    let daemon_dir = d.stop().unwrap();
    let data_root = daemon_dir.join("data");

    // The same table as `docker images` printed, but for the CREATED
    // column (time went by).
    let out = ok(&data_root, &["images"]);
    assert_eq!(out.lines().count(), 2, "{out}");
    let (ours, theirs): (Vec<&str>, Vec<&str>) =
        (out.lines().collect(), docker_images.lines().collect());
    // Header widths depend on the CREATED texts; the first three columns do not.
    assert_eq!(
        ours[0][..45],
        theirs[0][..45],
        "ours:\n{out}docker:\n{docker_images}"
    );
    assert_eq!(cells(ours[0]), cells(theirs[0]));
    let (mut row, mut docker_row) = (cells(ours[1]), cells(theirs[1]));
    assert_eq!(
        row.remove(3).ends_with(" ago"),
        docker_row.remove(3).ends_with(" ago")
    );
    assert_eq!(row, docker_row, "ours:\n{out}docker:\n{docker_images}");
    assert_eq!(row[2], id[7..19]);

    // inspect: docker's keys in docker's order, the same values where
    // they do not depend on the daemon's state.
    let inspect = ok(&data_root, &["inspect", "dunnage-test/cli:1"]);
    assert_eq!(top_keys(&inspect), top_keys(&docker_inspect), "{inspect}");
    let (ours, theirs): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&inspect).unwrap(),
        serde_json::from_str(&docker_inspect).unwrap(),
    );
    for key in [
        "Id",
        "RepoTags",
        "Created",
        "Config",
        "Os",
        "Size",
        "RootFS",
        "GraphDriver",
    ] {
        assert_eq!(ours[0][key], theirs[0][key], "{key}");
    }

    let archive = dir.join("from-docker.tar");
    ok(
        &data_root,
        &[
            "save",
            "-o",
            archive.to_str().unwrap(),
            "dunnage-test/cli:1",
        ],
    );
    let fresh = dir.join("fresh");
    assert_eq!(
        ok(&fresh, &["load", "-i", archive.to_str().unwrap()]),
        "Loaded image: dunnage-test/cli:1\n"
    );
    assert_eq!(
        ok(&fresh, &["images", "-q", "--no-trunc"]),
        format!("{id}\n")
    );
}

#[test]
fn load_reads_stdin_and_save_writes_stdout_like_docker() {
    require_root!();
    require_command!("gzip");
    let dir = TempDir::new("cli-stdio").unwrap();
    let (root, archive, id) = imported(&dir);
    // save without -o: the archive on stdout, byte for byte as with -o.
    let saved = Command::new(example_binary("dunnage"))
        .arg("--root")
        .arg(&root)
        .args(["save", "quickstart/bb:1"])
        .output()
        .unwrap();
    assert!(saved.status.success(), "{saved:?}");
    assert_eq!(saved.stdout, std::fs::read(&archive).unwrap());
    // The spool file had no name: nothing is left in the store's tmp.
    let left: Vec<_> = std::fs::read_dir(root.join("tmp"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
    // load -i /dev/stdin from a pipe (compressed): the stream is read once.
    let devstdin = dir.join("devstdin");
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"gzip -c "$1" | "$2" --root "$3" load -i /dev/stdin"#)
        .arg("sh")
        .arg(&archive)
        .arg(example_binary("dunnage"))
        .arg(&devstdin)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"Loaded image: quickstart/bb:1\n");
    // load without -i: the archive on stdin, from a file and from a pipe
    // (gzip-compressed).
    let fresh = dir.join("fresh");
    let out = Command::new(example_binary("dunnage"))
        .arg("--root")
        .arg(&fresh)
        .arg("load")
        .stdin(std::fs::File::open(&archive).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"Loaded image: quickstart/bb:1\n");
    let piped = dir.join("piped");
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"gzip -c "$1" | "$2" --root "$3" load"#)
        .arg("sh")
        .arg(&archive)
        .arg(example_binary("dunnage"))
        .arg(&piped)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(out.stdout, b"Loaded image: quickstart/bb:1\n");
    assert_eq!(
        ok(&piped, &["images", "-q", "--no-trunc"]),
        format!("{id}\n")
    );
    // Garbage on stdin is one line of error, and nothing is left in tmp.
    let out = Command::new("sh")
        .arg("-c")
        .arg(r#"echo garbage | "$1" --root "$2" load"#)
        .arg("sh")
        .arg(example_binary("dunnage"))
        .arg(&piped)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&out.stderr).lines().count(), 1);
    assert_eq!(std::fs::read_dir(piped.join("tmp")).unwrap().count(), 0);
}

#[test]
fn quickstart_refuses_to_run_unprivileged_with_a_clear_message() {
    require_root!();
    require_command!("setpriv");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart.sh");
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "bash"])
        .arg(&script)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("needs root"), "{err}");
    assert!(out.stdout.is_empty(), "{out:?}");
}

/// The compiled seccomp program is kept in `containers/.seccomp/` for the
/// next process; a damaged entry is not used but compiled and written
/// again, and every run is confined all the same.
#[test]
fn run_keeps_the_compiled_seccomp_program_and_ignores_a_damaged_one() {
    require_root!();
    require_command!("tar");
    let tmp = TempDir::new("cli-seccomp-cache").unwrap();
    let (root, _, _) = imported(&tmp);
    let parent = dunnage_testsupport::unique_name("cli-seccomp");
    let mut guard = dunnage_testsupport::CgroupGuard::new();
    for e in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        guard.add(e.path().join(&parent));
    }
    let run = |root: &Path| {
        ok(
            root,
            &[
                "run",
                "--rm",
                "--cgroup-parent",
                &parent,
                "quickstart/bb:1",
                "sh",
                "-c",
                "while read k v; do [ \"$k\" = Seccomp: ] && echo $v; done < /proc/self/status; exit 0",
            ],
        )
    };
    let cache = root.join("containers/.seccomp");
    let entries = || -> Vec<PathBuf> {
        std::fs::read_dir(&cache)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    assert_eq!(run(&root), "2\n");
    let files = entries();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].extension().is_some_and(|e| e == "bpf"));
    let good = std::fs::read(&files[0]).unwrap();
    // The next run reads it: the file is left as it was.
    assert_eq!(run(&root), "2\n");
    assert_eq!(std::fs::read(&files[0]).unwrap(), good);
    // One flipped bit in the program, a truncated file, junk: each is
    // ignored, the policy compiled again and the entry rewritten.
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 1;
    for bad in [flipped, good[..good.len() / 2].to_vec(), b"junk".to_vec()] {
        std::fs::write(&files[0], &bad).unwrap();
        assert_eq!(run(&root), "2\n");
        assert_eq!(std::fs::read(&files[0]).unwrap(), good);
    }
    // Unconfined containers neither read nor write it.
    std::fs::remove_dir_all(&cache).unwrap();
    let out = ok(
        &root,
        &[
            "run",
            "--rm",
            "--cgroup-parent",
            &parent,
            "--security-opt",
            "seccomp=unconfined",
            "quickstart/bb:1",
            "sh",
            "-c",
            "exit 0",
        ],
    );
    assert_eq!(out, "");
    assert!(entries().is_empty());
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
}
