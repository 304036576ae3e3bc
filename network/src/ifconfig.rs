//! The container's side of an attachment, configured with socket ioctls
//! from inside its network namespace instead of a netlink socket there:
//! `lo` and `eth0` up, the IPv4 address with its netmask, the default
//! route.
//!
//! Why not netlink: the kernel frees a netlink socket one RCU grace period
//! after its close, and until then the socket holds its network
//! namespace. A namespace where the attach made one outlived its
//! container's last process by that long, so a `remove` right after a
//! short container's exit still found the veth pair alive and had to
//! delete it itself, which waits for more grace periods (tens of ms). The
//! unbound `AF_INET` datagram socket used here is freed at its close (only
//! a bound UDP socket is freed after a grace period), and the thread that
//! entered the namespace drops it when it exits, before [`configure`]
//! returns: once the container's processes are gone, nothing of ours keeps
//! its namespace, and the kernel deletes the pair with it.

use std::ffi::c_void;
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use crate::error::{Error, Result};

/// What [`configure`] sets up in the container's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Config {
    /// The container's interface (`eth0`), already in the namespace.
    pub ifname: String,
    /// Its address.
    pub address: Ipv4Addr,
    /// The subnet's prefix length.
    pub prefix_len: u8,
    /// The default route's gateway.
    pub gateway: Ipv4Addr,
}

/// In the network namespace `netns`: bring `lo` and the interface up, give
/// the interface its address and netmask (the broadcast address follows,
/// as `ifconfig` sets it) and add the default route via the gateway.
pub(crate) fn configure(netns: BorrowedFd<'_>, cfg: &Config) -> Result<()> {
    let cfg = cfg.clone();
    crate::netns::run_in(netns, move || {
        let s = Socket::new()?;
        s.set_up("lo")?;
        s.set_up(&cfg.ifname)?;
        s.set_sockaddr(libc::SIOCSIFADDR, "set address", &cfg.ifname, cfg.address)?;
        s.set_sockaddr(
            libc::SIOCSIFNETMASK,
            "set netmask",
            &cfg.ifname,
            netmask(cfg.prefix_len),
        )?;
        s.add_default_route(&cfg.ifname, cfg.gateway)
    })
}

/// Whether the network namespace `netns` has an interface named `ifname`.
pub(crate) fn has_interface(netns: BorrowedFd<'_>, ifname: &str) -> Result<bool> {
    let ifname = ifname.to_string();
    crate::netns::run_in(netns, move || {
        let s = Socket::new()?;
        let mut req = ifreq(&ifname)?;
        match s.ioctl(libc::SIOCGIFINDEX, "get interface index", &ifname, &mut req) {
            Ok(()) => Ok(true),
            Err(Error::Netlink { source, .. }) if source.raw_os_error() == Some(libc::ENODEV) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    })
}

/// The netmask of a prefix length (at most 32).
fn netmask(prefix_len: u8) -> Ipv4Addr {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0);
    Ipv4Addr::from(bits)
}

/// A zeroed `ifreq` naming `ifname`; refused when the name does not fit.
fn ifreq(ifname: &str) -> Result<libc::ifreq> {
    // SAFETY: ifreq is plain data (arrays, integers, a union of them and
    // of a pointer), for which all zeroes is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    let name = ifname.as_bytes();
    if name.is_empty() || name.len() >= req.ifr_name.len() || name.contains(&0) {
        return Err(Error::InvalidName {
            kind: "interface",
            name: ifname.to_string(),
            reason: "1 to 15 bytes without NUL",
        });
    }
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    Ok(req)
}

/// An IPv4 `sockaddr` (as `sockaddr_in`) for ioctl requests.
fn sockaddr(ip: Ipv4Addr) -> libc::sockaddr {
    let sin = libc::sockaddr_in {
        sin_family: libc::AF_INET as libc::sa_family_t,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from(ip).to_be(),
        },
        sin_zero: [0; 8],
    };
    // SAFETY: sockaddr_in and sockaddr have the same size (16 bytes) and
    // are plain data; the kernel reads the former through the latter.
    unsafe { std::mem::transmute::<libc::sockaddr_in, libc::sockaddr>(sin) }
}

/// The kernel's `struct rtentry` (`<linux/route.h>`), which the libc crate
/// defines for musl but not for glibc.
#[repr(C)]
struct RtEntry {
    rt_pad1: libc::c_ulong,
    rt_dst: libc::sockaddr,
    rt_gateway: libc::sockaddr,
    rt_genmask: libc::sockaddr,
    rt_flags: libc::c_ushort,
    rt_pad2: libc::c_short,
    rt_pad3: libc::c_ulong,
    rt_pad4: *mut c_void,
    rt_metric: libc::c_short,
    rt_dev: *mut libc::c_char,
    rt_mtu: libc::c_ulong,
    rt_window: libc::c_ulong,
    rt_irtt: libc::c_ushort,
}

/// An unbound `AF_INET` datagram socket for interface ioctls.
struct Socket(OwnedFd);

impl Socket {
    fn new() -> Result<Socket> {
        // SAFETY: plain socket(2); the fd is owned below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(Error::Netlink {
                op: "open an AF_INET socket",
                target: "the container's namespace".into(),
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: fd is a fresh descriptor nothing else owns.
        Ok(Socket(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// `ioctl(request, arg)` on the socket.
    fn ioctl<T>(
        &self,
        request: libc::c_ulong,
        op: &'static str,
        target: &str,
        arg: &mut T,
    ) -> Result<()> {
        // SAFETY: every request used here takes a pointer to the struct
        // type passed in, valid for reads and writes during the call.
        let rc = unsafe {
            libc::ioctl(
                self.0.as_raw_fd(),
                request as _,
                (arg as *mut T).cast::<c_void>(),
            )
        };
        if rc < 0 {
            return Err(Error::Netlink {
                op,
                target: target.to_string(),
                source: io::Error::last_os_error(),
            });
        }
        Ok(())
    }

    /// Set `IFF_UP` on `ifname` unless it is up.
    fn set_up(&self, ifname: &str) -> Result<()> {
        let mut req = ifreq(ifname)?;
        self.ioctl(libc::SIOCGIFFLAGS, "get interface flags", ifname, &mut req)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags };
        if flags & libc::IFF_UP as libc::c_short != 0 {
            return Ok(());
        }
        req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
        self.ioctl(libc::SIOCSIFFLAGS, "set interface up", ifname, &mut req)
    }

    /// An address-valued request (`SIOCSIFADDR`, `SIOCSIFNETMASK`).
    fn set_sockaddr(
        &self,
        request: libc::c_ulong,
        op: &'static str,
        ifname: &str,
        ip: Ipv4Addr,
    ) -> Result<()> {
        let mut req = ifreq(ifname)?;
        req.ifr_ifru.ifru_addr = sockaddr(ip);
        self.ioctl(request, op, ifname, &mut req)
    }

    /// `SIOCADDRT`: the default route via `gateway` on `ifname`.
    fn add_default_route(&self, ifname: &str, gateway: Ipv4Addr) -> Result<()> {
        let mut dev: Vec<libc::c_char> = ifname.bytes().map(|b| b as libc::c_char).collect();
        dev.push(0);
        let mut rt = RtEntry {
            rt_pad1: 0,
            rt_dst: sockaddr(Ipv4Addr::UNSPECIFIED),
            rt_gateway: sockaddr(gateway),
            rt_genmask: sockaddr(Ipv4Addr::UNSPECIFIED),
            rt_flags: libc::RTF_UP | libc::RTF_GATEWAY,
            rt_pad2: 0,
            rt_pad3: 0,
            rt_pad4: std::ptr::null_mut(),
            rt_metric: 0,
            rt_dev: dev.as_mut_ptr(),
            rt_mtu: 0,
            rt_window: 0,
            rt_irtt: 0,
        };
        self.ioctl(libc::SIOCADDRT, "add default route", ifname, &mut rt)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netmasks_of_every_prefix_length() {
        assert_eq!(netmask(0), Ipv4Addr::UNSPECIFIED);
        assert_eq!(netmask(16), Ipv4Addr::new(255, 255, 0, 0));
        assert_eq!(netmask(23), Ipv4Addr::new(255, 255, 254, 0));
        assert_eq!(netmask(32), Ipv4Addr::BROADCAST);
        assert_eq!(netmask(200), Ipv4Addr::BROADCAST);
    }

    #[test]
    fn interface_names_that_do_not_fit_are_refused() {
        assert!(ifreq("eth0").is_ok());
        assert!(ifreq("fifteen-bytes-x").is_ok());
        for bad in ["", "sixteen-bytes-xx", "a\0b"] {
            assert!(
                matches!(ifreq(bad), Err(Error::InvalidName { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_sockaddr_carries_the_address_in_network_order() {
        let sa = sockaddr(Ipv4Addr::new(172, 17, 0, 2));
        assert_eq!(sa.sa_family, libc::AF_INET as libc::sa_family_t);
        assert_eq!(&sa.sa_data[2..6], &[172u8 as libc::c_char, 17, 0, 2]);
    }
}
