//! Applying resources writes exactly what is set, reads back as written,
//! and refuses what the host cannot honour before writing anything.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use dunnage_cgroups::oci::LinuxResources;
use dunnage_cgroups::{
    Controller, DeviceRule, DeviceValue, Error, HugetlbLimit, Limit, Resources, Version,
};
use dunnage_testsupport::require_root;

const ALL: &[Controller] = &[
    Controller::Cpu,
    Controller::Cpuacct,
    Controller::Cpuset,
    Controller::Memory,
    Controller::Pids,
    Controller::Io,
];

#[test]
fn every_controller_file_is_written_and_reads_back() {
    require_root!();
    let h = host();
    let cg = cgroup("files", ALL);
    let (major, minor) = block_device();
    let mut r = Resources::default();
    r.cpu.shares = Some(512);
    r.cpu.quota = Some(Limit::Value(30_000));
    r.cpu.period = Some(50_000);
    r.cpu.idle = Some(false);
    r.cpuset.cpus = Some("0".into());
    r.cpuset.mems = Some("0".into());
    r.memory.limit = Some(Limit::Value(64 << 20));
    r.memory.reservation = Some(Limit::Value(32 << 20));
    r.pids_max = Some(Limit::Value(42));
    r.io.read_bps = vec![DeviceValue {
        major,
        minor,
        value: 1 << 20,
    }];
    r.io.write_iops = vec![DeviceValue {
        major,
        minor,
        value: 100,
    }];
    let v1 = |c| cg.dir_of(c).unwrap().version == Version::V1;
    if v1(Controller::Memory) {
        r.memory.swap = Some(Limit::Value(128 << 20));
        r.memory.swappiness = Some(10);
    }
    cg.apply(&r).unwrap();
    assert_eq!(read(&cg, Controller::Cpuset, "cpuset.cpus"), "0");
    assert_eq!(read(&cg, Controller::Cpuset, "cpuset.mems"), "0");
    assert_eq!(read(&cg, Controller::Pids, "pids.max"), "42");
    let dev = format!("{major}:{minor}");
    if v1(Controller::Cpu) {
        assert_eq!(read(&cg, Controller::Cpu, "cpu.shares"), "512");
        assert_eq!(read(&cg, Controller::Cpu, "cpu.cfs_quota_us"), "30000");
        assert_eq!(read(&cg, Controller::Cpu, "cpu.cfs_period_us"), "50000");
        assert_eq!(
            read(&cg, Controller::Memory, "memory.limit_in_bytes"),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            read(&cg, Controller::Memory, "memory.soft_limit_in_bytes"),
            (32u64 << 20).to_string()
        );
        assert_eq!(
            read(&cg, Controller::Memory, "memory.memsw.limit_in_bytes"),
            (128u64 << 20).to_string()
        );
        assert_eq!(read(&cg, Controller::Memory, "memory.swappiness"), "10");
        assert_eq!(
            read(&cg, Controller::Io, "blkio.throttle.read_bps_device"),
            format!("{dev} 1048576")
        );
        assert_eq!(
            read(&cg, Controller::Io, "blkio.throttle.write_iops_device"),
            format!("{dev} 100")
        );
    } else {
        assert_eq!(read(&cg, Controller::Cpu, "cpu.weight"), "20"); // 512 shares, converted as runc does
        assert_eq!(read(&cg, Controller::Cpu, "cpu.max"), "30000 50000");
        assert_eq!(
            read(&cg, Controller::Memory, "memory.max"),
            (64u64 << 20).to_string()
        );
        assert_eq!(
            read(&cg, Controller::Memory, "memory.low"),
            (32u64 << 20).to_string()
        );
        let io_max = read(&cg, Controller::Io, "io.max");
        assert_eq!(
            io_max,
            format!("{dev} rbps=1048576 wbps=max riops=max wiops=100")
        );
    }
    assert_eq!(read(&cg, Controller::Cpu, "cpu.idle"), "0");
    let _ = h;
}

#[test]
fn applying_writes_only_what_is_set() {
    require_root!();
    let cg = cgroup("only", &[Controller::Memory, Controller::Pids]);
    let before = cg.stats().unwrap().memory.unwrap().limit;
    let plan = cg
        .plan(&Resources {
            pids_max: Some(Limit::Max),
            ..Resources::default()
        })
        .unwrap();
    assert_eq!(plan.len(), 1);
    assert!(plan[0].path.ends_with("pids.max"));
    assert_eq!(plan[0].value, "max");
    cg.apply(&Resources::default()).unwrap();
    assert_eq!(cg.stats().unwrap().memory.unwrap().limit, before);
}

#[test]
fn unsupported_resources_fail_before_anything_is_written() {
    require_root!();
    let cg = cgroup("unsup", &[Controller::Memory, Controller::Pids]);
    // pids is fine, but no net_cls here: nothing may be written.
    let mut r = Resources {
        pids_max: Some(Limit::Value(7)),
        net_cls_classid: Some(0x10001),
        ..Resources::default()
    };
    match cg.apply(&r) {
        Err(Error::Unsupported { resource, .. }) => assert_eq!(resource, "net_cls.classid"),
        other => panic!("{other:?}"),
    }
    assert_eq!(read(&cg, Controller::Pids, "pids.max"), "max");
    // Invalid values are refused before writing, too.
    r.net_cls_classid = None;
    r.cpuset.cpus = Some("3-1".into());
    assert!(matches!(
        cg.apply(&r),
        Err(Error::InvalidValue {
            resource: "cpuset.cpus",
            ..
        })
    ));
    r.cpuset.cpus = None;
    r.memory.limit = Some(Limit::Value(u64::MAX));
    assert!(matches!(cg.apply(&r), Err(Error::InvalidValue { .. })));
    assert_eq!(read(&cg, Controller::Pids, "pids.max"), "max");
    // A huge-page size the kernel does not have is named in the error.
    let r = Resources {
        hugetlb: vec![HugetlbLimit {
            page_size: "3MB".into(),
            limit: 0,
        }],
        ..Resources::default()
    };
    assert!(matches!(cg.apply(&r), Err(Error::Unsupported { .. })));
}

#[test]
fn device_rules_apply_on_v1_and_become_a_program_on_v2() {
    require_root!();
    let h = host();
    let cg = cgroup("devices", &[Controller::Devices]);
    let r = Resources {
        devices: vec![
            DeviceRule {
                allow: false,
                kind: 'a',
                major: None,
                minor: None,
                access: "rwm".into(),
            },
            DeviceRule {
                allow: true,
                kind: 'c',
                major: Some(1),
                minor: Some(3),
                access: "rw".into(),
            },
        ],
        ..Resources::default()
    };
    if unified(&h) {
        cg.apply(&r).unwrap();
        let dir = &cg.dir_of(Controller::Devices).unwrap().path;
        assert_eq!(dunnage_cgroups::device_programs(dir).unwrap().len(), 1);
    } else {
        cg.apply(&r).unwrap();
        assert_eq!(read(&cg, Controller::Devices, "devices.list"), "c 1:3 rw");
    }
}

#[test]
fn several_device_rules_through_one_open_file_each_take_effect() {
    require_root!();
    let h = host();
    if unified(&h) {
        return;
    }
    let cg = cgroup("devices-many", &[Controller::Devices]);
    let rule = DeviceRule::new;
    // Writes alternate between devices.deny and devices.allow, and go to
    // each several times (each file is opened once by `apply`).
    let r = Resources {
        devices: vec![
            rule(false, 'a', None, None, "rwm"),
            rule(true, 'c', Some(1), Some(3), "rwm"),
            rule(true, 'c', Some(1), Some(5), "rwm"),
            rule(true, 'c', Some(1), Some(7), "rwm"),
            rule(false, 'c', Some(1), Some(7), "m"),
            rule(true, 'c', Some(5), Some(0), "rw"),
            rule(true, 'c', Some(136), None, "rwm"),
            rule(false, 'c', Some(1), Some(5), "w"),
        ],
        ..Resources::default()
    };
    assert_eq!(cg.plan(&r).unwrap().len(), 8);
    cg.apply(&r).unwrap();
    let mut list: Vec<String> = read(&cg, Controller::Devices, "devices.list")
        .lines()
        .map(str::to_owned)
        .collect();
    list.sort();
    assert_eq!(
        list,
        [
            "c 136:* rwm",
            "c 1:3 rwm",
            "c 1:5 rm",
            "c 1:7 rw",
            "c 5:0 rw"
        ]
    );
}

#[test]
fn hugetlb_limit_applies_where_the_controller_lives() {
    require_root!();
    let h = host();
    // Hybrid here: hugetlb is on the v2 side; pure v2: there too.
    let Some(hier) = h.for_controller(Controller::Hugetlb) else {
        panic!("no hugetlb controller on this host");
    };
    let cg = cgroup("hugetlb", &[Controller::Hugetlb]);
    let r = Resources {
        hugetlb: vec![HugetlbLimit {
            page_size: "2MB".into(),
            limit: 4 << 21,
        }],
        ..Resources::default()
    };
    cg.apply(&r).unwrap();
    let file = match hier.version {
        Version::V1 => "hugetlb.2MB.limit_in_bytes",
        Version::V2 => "hugetlb.2MB.max",
    };
    assert_eq!(
        read(&cg, Controller::Hugetlb, file),
        (4u64 << 21).to_string()
    );
    let stats = cg.stats().unwrap().hugetlb;
    assert!(
        stats.iter().any(|s| s.page_size == "2MB" && s.usage == 0),
        "{stats:?}"
    );
}

#[test]
fn oci_resources_convert_and_apply() {
    require_root!();
    let json = r#"{
        "memory": {"limit": 67108864, "reservation": -1},
        "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "0"},
        "pids": {"limit": 0},
        "blockIO": {"weight": 500}
    }"#;
    let oci: LinuxResources = serde_json::from_str(json).unwrap();
    let mut r = Resources::try_from(&oci).unwrap();
    assert_eq!(r.pids_max, Some(Limit::Max));
    assert_eq!(r.memory.reservation, Some(Limit::Max));
    r.io.weight = None; // needs a weight-capable I/O scheduler; not all hosts have one
    let cg = cgroup("oci", ALL);
    cg.apply(&r).unwrap();
    let s = cg.stats().unwrap();
    assert_eq!(s.memory.unwrap().limit, Limit::Value(64 << 20));
    assert_eq!(s.pids.unwrap().max, Limit::Max);
    let bad: LinuxResources = serde_json::from_str(r#"{"memory": {"limit": -5}}"#).unwrap();
    assert!(matches!(
        Resources::try_from(&bad),
        Err(Error::InvalidValue {
            resource: "memory.limit",
            ..
        })
    ));
}
