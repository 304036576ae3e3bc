//! The `ip dunnage` rule set sent to the kernel as one nf_tables netlink
//! batch (`NETLINK_NETFILTER`), without the `nft` binary.
//!
//! [`crate::nft`] describes the rules (and keeps their nft JSON form, which
//! names the rule set in the applied-rules record and which `nft -j -f`
//! accepts too); this module encodes the same rules as the messages `nft`
//! itself sends (`nft --debug=netlink` shows them): `BATCH_BEGIN`,
//! `NEWTABLE`, `DELRULE` of the whole table (a flush), `NEWCHAIN` for each
//! chain, `NEWRULE` for each rule, `BATCH_END`. The kernel applies a batch
//! in one transaction, synchronously inside `sendmsg(2)`, and answers each
//! refused message with its errno; the last message asks for an
//! acknowledgement, which ends the answers. Sending the batch costs well
//! under a millisecond, where starting `nft` and parsing the rule set took
//! 8 ms on a quiet machine and 15-25 ms on a loaded one (BENCHMARKS.md).

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};

use crate::error::{Error, Result};

const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_APPEND: u16 = 0x800;
const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 0x8000;

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWTABLE: u16 = 0;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
const NFT_MSG_NEWRULE: u16 = 6;
const NFT_MSG_DELRULE: u16 = 8;
/// `NFPROTO_IPV4`: the family of table `ip dunnage`.
const NFPROTO_IPV4: u8 = 2;

/// A register of the nf_tables VM (`NFT_REG_1`, `NFT_REG_2`: 16 bytes each).
pub(crate) const REG1: u32 = 1;
/// The second data register.
pub(crate) const REG2: u32 = 2;

/// One expression of a rule, as `nft --debug=netlink` prints them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Expr {
    /// `payload load LEN @ BASE header + OFFSET => reg 1`.
    Payload {
        /// `NFT_PAYLOAD_NETWORK_HEADER` (1) or `_TRANSPORT_HEADER` (2).
        base: u32,
        offset: u32,
        len: u32,
    },
    /// `cmp OP reg 1 DATA` (`NFT_CMP_EQ` 0, `NFT_CMP_NEQ` 1).
    Cmp { op: u32, data: Vec<u8> },
    /// `bitwise reg 1 = (reg 1 & MASK) ^ 0`.
    Mask { mask: Vec<u8> },
    /// `meta load KEY => reg 1`.
    Meta { key: u32 },
    /// `ct load KEY => reg 1`.
    Ct { key: u32 },
    /// `fib FLAGS RESULT => reg 1`.
    Fib { result: u32, flags: u32 },
    /// `immediate reg 0 jump -> CHAIN`.
    Jump(String),
    /// `immediate reg REG DATA`.
    Immediate { reg: u32, data: Vec<u8> },
    /// `nat dnat ip addr_min reg 1 proto_min reg 2 flags 0x2`.
    Dnat,
    /// `masq`.
    Masquerade,
}

/// A base chain's hook: `type nat hook HOOK priority PRIORITY`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Hook {
    /// `NF_INET_PRE_ROUTING` 0, `_LOCAL_OUT` 3, `_POST_ROUTING` 4.
    pub(crate) num: u32,
    pub(crate) priority: i32,
}

/// What one batch does to the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    /// Delete the table (`add table` first, so that a missing one is fine).
    Delete,
    /// Replace the table's rules: `add table`, flush it, add the chains
    /// (re-adding an existing one changes nothing) and the rules.
    Replace {
        chains: Vec<(String, Option<Hook>)>,
        rules: Vec<(String, Vec<Expr>)>,
    },
}

/// Append a netlink attribute (header, payload, padding to 4 bytes).
fn put(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

fn put_u32(buf: &mut Vec<u8>, ty: u16, v: u32) {
    put(buf, ty, &v.to_be_bytes());
}

fn put_str(buf: &mut Vec<u8>, ty: u16, s: &str) {
    let mut data = s.as_bytes().to_vec();
    data.push(0);
    put(buf, ty, &data);
}

/// Append a nested attribute whose payload `f` writes.
fn nest(buf: &mut Vec<u8>, ty: u16, f: impl FnOnce(&mut Vec<u8>)) {
    let start = buf.len();
    buf.extend_from_slice(&[0; 4]);
    f(buf);
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
    buf[start + 2..start + 4].copy_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
}

/// `NFTA_DATA_VALUE` inside the nested attribute `ty`.
fn put_value(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    nest(buf, ty, |b| put(b, 1, data));
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Mask { .. } => "bitwise",
            Expr::Meta { .. } => "meta",
            Expr::Ct { .. } => "ct",
            Expr::Fib { .. } => "fib",
            Expr::Jump(_) | Expr::Immediate { .. } => "immediate",
            Expr::Dnat => "nat",
            Expr::Masquerade => "masq",
        }
    }

    /// The expression's attributes (`NFTA_EXPR_DATA`'s payload).
    fn encode(&self, b: &mut Vec<u8>) {
        match self {
            Expr::Payload { base, offset, len } => {
                put_u32(b, 1, REG1); // NFTA_PAYLOAD_DREG
                put_u32(b, 2, *base);
                put_u32(b, 3, *offset);
                put_u32(b, 4, *len);
            }
            Expr::Cmp { op, data } => {
                put_u32(b, 1, REG1); // NFTA_CMP_SREG
                put_u32(b, 2, *op);
                put_value(b, 3, data);
            }
            Expr::Mask { mask } => {
                put_u32(b, 1, REG1); // NFTA_BITWISE_SREG
                put_u32(b, 2, REG1); // NFTA_BITWISE_DREG
                put_u32(b, 3, mask.len() as u32);
                put_value(b, 4, mask);
                put_value(b, 5, &vec![0; mask.len()]);
            }
            Expr::Meta { key } => {
                put_u32(b, 1, REG1); // NFTA_META_DREG
                put_u32(b, 2, *key);
            }
            Expr::Ct { key } => {
                put_u32(b, 1, REG1); // NFTA_CT_DREG
                put_u32(b, 2, *key);
            }
            Expr::Fib { result, flags } => {
                put_u32(b, 1, REG1); // NFTA_FIB_DREG
                put_u32(b, 2, *result);
                put_u32(b, 3, *flags);
            }
            Expr::Jump(chain) => {
                put_u32(b, 1, 0); // NFTA_IMMEDIATE_DREG: NFT_REG_VERDICT
                nest(b, 2, |d| {
                    // NFTA_DATA_VERDICT { NFTA_VERDICT_CODE, _CHAIN }
                    nest(d, 2, |v| {
                        put_u32(v, 1, (-3i32) as u32); // NFT_JUMP
                        put_str(v, 2, chain);
                    })
                });
            }
            Expr::Immediate { reg, data } => {
                put_u32(b, 1, *reg);
                put_value(b, 2, data);
            }
            Expr::Dnat => {
                put_u32(b, 1, 1); // NFTA_NAT_TYPE: NFT_NAT_DNAT
                put_u32(b, 2, u32::from(NFPROTO_IPV4));
                put_u32(b, 3, REG1); // NFTA_NAT_REG_ADDR_MIN
                put_u32(b, 5, REG2); // NFTA_NAT_REG_PROTO_MIN
                put_u32(b, 7, 2); // NFTA_NAT_FLAGS: NF_NAT_RANGE_PROTO_SPECIFIED
            }
            Expr::Masquerade => {}
        }
    }
}

/// A batch being built: the messages and, for each sequence number, what
/// it was about (for errors).
struct Batch {
    buf: Vec<u8>,
    seq: u32,
    about: Vec<(u32, String)>,
}

impl Batch {
    fn new(seq: u32) -> Batch {
        let mut b = Batch {
            buf: Vec::new(),
            seq,
            about: Vec::new(),
        };
        // BATCH_BEGIN/END carry res_id = NFNL_SUBSYS_NFTABLES, family 0.
        b.message(NFNL_MSG_BATCH_BEGIN, 0, 0, "batch", |_| {});
        b
    }

    /// Append one message: `nlmsghdr`, `nfgenmsg`, attributes.
    fn message(
        &mut self,
        ty: u16,
        flags: u16,
        family: u8,
        about: &str,
        attrs: impl FnOnce(&mut Vec<u8>),
    ) {
        let start = self.buf.len();
        let batch_marker = ty == NFNL_MSG_BATCH_BEGIN || ty == NFNL_MSG_BATCH_END;
        let ty = if batch_marker {
            ty
        } else {
            (NFNL_SUBSYS_NFTABLES << 8) | ty
        };
        self.seq = self.seq.wrapping_add(1);
        self.buf.extend_from_slice(&[0; 4]); // length, set below
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf
            .extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        self.buf.extend_from_slice(&self.seq.to_ne_bytes());
        self.buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
        let res_id = if batch_marker {
            NFNL_SUBSYS_NFTABLES
        } else {
            0
        };
        self.buf.extend_from_slice(&[family, 0]); // family, NFNETLINK_V0
        self.buf.extend_from_slice(&res_id.to_be_bytes());
        attrs(&mut self.buf);
        let len = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
        self.about.push((self.seq, about.to_string()));
    }
}

/// Encode `change` to table `table` as one batch; the sequence numbers
/// start after `seq`. Returns the bytes, the sequence number of the last
/// message (the one acknowledged) and what each message was about.
pub(crate) fn encode(table: &str, change: &Change, seq: u32) -> (Vec<u8>, Vec<(u32, String)>) {
    let mut b = Batch::new(seq);
    let f = NFPROTO_IPV4;
    b.message(NFT_MSG_NEWTABLE, NLM_F_CREATE, f, "add table", |a| {
        put_str(a, 1, table) // NFTA_TABLE_NAME
    });
    match change {
        Change::Delete => {
            b.message(NFT_MSG_DELTABLE, NLM_F_ACK, f, "delete table", |a| {
                put_str(a, 1, table)
            });
        }
        Change::Replace { chains, rules } => {
            b.message(NFT_MSG_DELRULE, 0, f, "flush table", |a| {
                put_str(a, 1, table) // NFTA_RULE_TABLE, no chain: every rule
            });
            for (name, hook) in chains {
                let about = format!("add chain {name}");
                b.message(NFT_MSG_NEWCHAIN, NLM_F_CREATE, f, &about, |a| {
                    put_str(a, 1, table); // NFTA_CHAIN_TABLE
                    put_str(a, 3, name); // NFTA_CHAIN_NAME
                    if let Some(h) = hook {
                        nest(a, 4, |n| {
                            put_u32(n, 1, h.num); // NFTA_HOOK_HOOKNUM
                            put_u32(n, 2, h.priority as u32); // NFTA_HOOK_PRIORITY
                        });
                        put_u32(a, 5, 1); // NFTA_CHAIN_POLICY: NF_ACCEPT
                        put_str(a, 7, "nat"); // NFTA_CHAIN_TYPE
                    }
                });
            }
            for (i, (chain, exprs)) in rules.iter().enumerate() {
                let last = i + 1 == rules.len();
                let flags = NLM_F_CREATE | NLM_F_APPEND | if last { NLM_F_ACK } else { 0 };
                let about = format!("add rule {} in chain {chain}", i + 1);
                b.message(NFT_MSG_NEWRULE, flags, f, &about, |a| {
                    put_str(a, 1, table); // NFTA_RULE_TABLE
                    put_str(a, 2, chain); // NFTA_RULE_CHAIN
                    nest(a, 4, |list| {
                        // NFTA_RULE_EXPRESSIONS
                        for e in exprs {
                            nest(list, 1, |el| {
                                // NFTA_LIST_ELEM { NFTA_EXPR_NAME, _DATA }
                                put_str(el, 1, e.name());
                                if !matches!(e, Expr::Masquerade) {
                                    nest(el, 2, |d| e.encode(d));
                                }
                            })
                        }
                    })
                });
            }
            if rules.is_empty() {
                // Something must be acknowledged: an empty flush again.
                b.message(NFT_MSG_DELRULE, NLM_F_ACK, f, "flush table", |a| {
                    put_str(a, 1, table)
                });
            }
        }
    }
    b.message(NFNL_MSG_BATCH_END, 0, 0, "batch", |_| {});
    (b.buf, b.about)
}

/// What the kernel answered to a batch.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// More answers are to come.
    More,
    /// The acknowledgement of `acked` arrived: every answer is in.
    Done,
}

/// Read the answers in `data` (one `recv`): `NLMSG_ERROR` messages with an
/// errno go to `errors` as (sequence number, errno); the acknowledgement
/// of sequence number `last`, or an error about the batch header `first`
/// (refused as a whole), ends them. Malformed input is an error, never a
/// panic.
pub(crate) fn read_answers(
    data: &[u8],
    first: u32,
    last: u32,
    errors: &mut Vec<(u32, i32)>,
) -> std::result::Result<Answer, String> {
    let mut rest = data;
    let mut answer = Answer::More;
    while !rest.is_empty() {
        let Some(hdr) = rest.get(..16) else {
            return Err(format!("{} bytes left: no message header", rest.len()));
        };
        let field =
            |at: usize| u32::from_ne_bytes([hdr[at], hdr[at + 1], hdr[at + 2], hdr[at + 3]]);
        let len = field(0) as usize;
        let ty = u16::from_ne_bytes([hdr[4], hdr[5]]);
        let seq = field(8);
        if len < 16 || len > rest.len() {
            return Err(format!("message length {len} of {} bytes", rest.len()));
        }
        if ty == NLMSG_ERROR {
            let Some(code) = rest.get(16..20) else {
                return Err("error message without its code".into());
            };
            let code = i32::from_ne_bytes([code[0], code[1], code[2], code[3]]);
            // Only this batch's: a socket may hold an older answer.
            if code != 0 && seq.wrapping_sub(first) <= last.wrapping_sub(first) {
                errors.push((seq, code.saturating_neg()));
            }
            if seq == last || (code != 0 && seq == first) {
                answer = Answer::Done;
            }
        }
        rest = &rest[len.next_multiple_of(4).min(rest.len())..];
    }
    Ok(answer)
}

/// An `NETLINK_NETFILTER` socket in one network namespace.
#[derive(Debug)]
pub(crate) struct Nftnl {
    socket: Socket,
    seq: u32,
    /// What the send buffer is known to hold (the default is larger).
    sndbuf: usize,
}

impl Nftnl {
    /// A socket in the network namespace `netns` (made on a short-lived
    /// thread there; the caller's thread does not move).
    pub(crate) fn open_in(netns: BorrowedFd<'_>) -> Result<Nftnl> {
        crate::netns::run_in(netns, || {
            let err = |op| Error::netlink(op, "NETLINK_NETFILTER");
            let mut socket = Socket::new(NETLINK_NETFILTER).map_err(err("open socket"))?;
            socket.bind_auto().map_err(err("bind socket"))?;
            socket
                .connect(&SocketAddr::new(0, 0))
                .map_err(err("connect socket"))?;
            // Answers without a copy of the refused message: a large batch
            // refused message by message must not overflow the receive
            // buffer (its final acknowledgement would be dropped).
            socket
                .set_cap_ack(true)
                .map_err(err("set NETLINK_CAP_ACK"))?;
            // A kernel that never answers must not hang the caller forever.
            let tv = libc::timeval {
                tv_sec: 30,
                tv_usec: 0,
            };
            // SAFETY: the socket is open; tv lives across the call and the
            // length is its size.
            let rc = unsafe {
                libc::setsockopt(
                    socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&raw const tv).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(err("set SO_RCVTIMEO")(std::io::Error::last_os_error()));
            }
            Ok(Nftnl {
                socket,
                seq: 0,
                sndbuf: 64 * 1024,
            })
        })
    }

    /// Make the send buffer hold a datagram of `len` bytes: `SO_SNDBUFFORCE`
    /// (root may exceed `wmem_max`), else `SO_SNDBUF`.
    fn fit_send_buffer(&mut self, len: usize) -> std::io::Result<()> {
        // The kernel's check is len <= sndbuf - 32; it doubles what it is
        // given for its bookkeeping.
        let want = len.saturating_add(4096);
        if want <= self.sndbuf {
            return Ok(());
        }
        let size = libc::c_int::try_from(want).unwrap_or(libc::c_int::MAX);
        let set = |opt| {
            // SAFETY: the socket is open; size lives across the call and the
            // length is its size.
            unsafe {
                libc::setsockopt(
                    self.socket.as_raw_fd(),
                    libc::SOL_SOCKET,
                    opt,
                    (&raw const size).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                )
            }
        };
        if set(libc::SO_SNDBUFFORCE) != 0 && set(libc::SO_SNDBUF) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.sndbuf = want;
        Ok(())
    }

    /// Apply `change` to table `ip TABLE` in one transaction.
    pub(crate) fn apply(&mut self, table: &str, change: &Change) -> Result<()> {
        let (buf, about) = encode(table, change, self.seq);
        let first = about.first().map_or(0, |a| a.0);
        // The acknowledged message is the one before BATCH_END.
        let last = about.iter().rev().nth(1).map_or(0, |a| a.0);
        self.seq = about.last().map_or(self.seq, |a| a.0);
        let op = "apply nftables rule set";
        // A batch is one datagram: the kernel refuses one larger than the
        // socket's send buffer (EMSGSIZE), about 200 KiB by default, some
        // 800 published ports. Grow the buffer to fit (as nft does).
        self.fit_send_buffer(buf.len())
            .map_err(Error::netlink(op, "SO_SNDBUF"))?;
        self.socket
            .send(&buf, 0)
            .map_err(Error::netlink(op, format!("table ip {table}")))?;
        let mut errors = Vec::new();
        loop {
            let (data, _) = self
                .socket
                .recv_from_full()
                .map_err(Error::netlink(op, format!("table ip {table}")))?;
            let answer = read_answers(&data, first, last, &mut errors)
                .map_err(|reason| Error::NetlinkDecode { op, reason })?;
            if answer == Answer::Done {
                break;
            }
        }
        match errors.first() {
            None => Ok(()),
            Some((seq, errno)) => {
                let what = about
                    .iter()
                    .find(|(s, _)| s == seq)
                    .map_or("the batch", |(_, w)| w.as_str());
                Err(Error::Netlink {
                    op,
                    target: format!("table ip {table}: {what}"),
                    source: std::io::Error::from_raw_os_error(*errno),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u32, ty: u16, seq: u32) -> Vec<u8> {
        let mut h = len.to_ne_bytes().to_vec();
        h.extend_from_slice(&ty.to_ne_bytes());
        h.extend_from_slice(&0u16.to_ne_bytes());
        h.extend_from_slice(&seq.to_ne_bytes());
        h.extend_from_slice(&0u32.to_ne_bytes());
        h
    }

    fn error(seq: u32, code: i32) -> Vec<u8> {
        let mut m = header(36, NLMSG_ERROR, seq);
        m.extend_from_slice(&code.to_ne_bytes());
        m.extend_from_slice(&header(16, 0, seq));
        m
    }

    #[test]
    fn attributes_are_padded_and_nests_sized() {
        let mut b = Vec::new();
        put_str(&mut b, 1, "ab");
        assert_eq!(b, [7, 0, 1, 0, b'a', b'b', 0, 0]);
        let mut n = Vec::new();
        nest(&mut n, 4, |x| put_u32(x, 2, 1));
        assert_eq!(&n[..4], &[12, 0, 4, 0x80]);
        assert_eq!(&n[8..], &[0, 0, 0, 1]);
    }

    #[test]
    fn a_batch_is_framed_and_only_the_last_change_is_acknowledged() {
        let change = Change::Replace {
            chains: vec![("ports".into(), None)],
            rules: vec![("ports".into(), vec![Expr::Masquerade])],
        };
        let (buf, about) = encode("dunnage", &change, 41);
        let mut at = 0;
        let mut kinds = Vec::new();
        while at < buf.len() {
            let len = u32::from_ne_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            let ty = u16::from_ne_bytes([buf[at + 4], buf[at + 5]]);
            let flags = u16::from_ne_bytes([buf[at + 6], buf[at + 7]]);
            kinds.push((ty, flags & NLM_F_ACK != 0));
            at += len;
        }
        assert_eq!(at, buf.len());
        let sub = |t| (NFNL_SUBSYS_NFTABLES << 8) | t;
        assert_eq!(
            kinds,
            [
                (NFNL_MSG_BATCH_BEGIN, false),
                (sub(NFT_MSG_NEWTABLE), false),
                (sub(NFT_MSG_DELRULE), false),
                (sub(NFT_MSG_NEWCHAIN), false),
                (sub(NFT_MSG_NEWRULE), true),
                (NFNL_MSG_BATCH_END, false),
            ]
        );
        assert_eq!(about.first().unwrap().0, 42);
        assert_eq!(about.len(), 6);
    }

    #[test]
    fn answers_end_at_the_acknowledgement_or_a_refused_batch() {
        let mut errors = Vec::new();
        assert_eq!(
            read_answers(&error(5, -17), 1, 9, &mut errors),
            Ok(Answer::More)
        );
        assert_eq!(errors, [(5, 17)]);
        assert_eq!(
            read_answers(&error(9, 0), 1, 9, &mut errors),
            Ok(Answer::Done)
        );
        assert_eq!(errors.len(), 1);
        let mut two = error(3, -1);
        two.extend(error(1, -1));
        assert_eq!(
            read_answers(&two, 1, 9, &mut errors),
            Ok(Answer::Done),
            "an error about the batch header ends the answers"
        );
        // An older batch's answer left on the socket is not this one's.
        let mut fresh = Vec::new();
        assert_eq!(
            read_answers(&error(40, -17), 1, 9, &mut fresh),
            Ok(Answer::More)
        );
        assert!(fresh.is_empty());
        // Other messages (notifications) are skipped.
        assert_eq!(
            read_answers(&header(16, 0x0a00, 9), 1, 9, &mut errors),
            Ok(Answer::More)
        );
    }

    #[test]
    fn malformed_answers_are_errors_not_panics() {
        let mut errors = Vec::new();
        let ok = error(9, 0);
        for bad in [
            ok[..3].to_vec(),
            ok[..15].to_vec(),
            header(0, NLMSG_ERROR, 9),
            header(15, NLMSG_ERROR, 9),
            header(4096, NLMSG_ERROR, 9),
            header(16, NLMSG_ERROR, 9),
            header(u32::MAX, 0, 9),
        ] {
            assert!(read_answers(&bad, 1, 9, &mut errors).is_err(), "{bad:?}");
        }
        // Every prefix of a good answer, and junk: no panic.
        for n in 0..ok.len() {
            let _ = read_answers(&ok[..n], 1, 9, &mut errors);
        }
        let junk: Vec<u8> = (0..200u32).map(|i| (i * 37 % 251) as u8).collect();
        let _ = read_answers(&junk, 1, 9, &mut errors);
    }
}
