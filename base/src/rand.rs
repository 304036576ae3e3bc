//! Random bytes and names from `getrandom(2)`.

use std::io;

use rustix::rand::{GetRandomFlags, getrandom};

/// Fill `buf` with random bytes from the kernel's pool (`getrandom(2)`).
pub fn fill(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        match getrandom(&mut buf[filled..], GetRandomFlags::empty()) {
            Ok(k) => filled += k,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// `n` random bytes as `2 * n` lowercase hex digits (a cache-id is
/// `random_hex(32)`).
pub fn random_hex(n: usize) -> io::Result<String> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = vec![0u8; n];
    fill(&mut buf)?;
    let mut s = String::with_capacity(2 * n);
    for b in buf {
        s.push(HEX[usize::from(b >> 4)] as char);
        s.push(HEX[usize::from(b & 15)] as char);
    }
    Ok(s)
}

/// `len` random characters of RFC 4648 base32 (`A-Z`, `2-7`), as overlay2's
/// `l/` link names are (26 characters).
pub fn random_base32(len: usize) -> io::Result<String> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bytes = vec![0u8; (len * 5).div_ceil(8)];
    fill(&mut bytes)?;
    let mut bits = 0u32;
    let mut nbits = 0;
    let mut out = String::with_capacity(len);
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        nbits += 8;
        while nbits >= 5 && out.len() < len {
            nbits -= 5;
            out.push(ALPHABET[((bits >> nbits) & 31) as usize] as char);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_have_the_asked_length_alphabet_and_differ() {
        let a = random_hex(32).unwrap();
        assert_eq!(a.len(), 64);
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        );
        assert_ne!(a, random_hex(32).unwrap());
        let l = random_base32(26).unwrap();
        assert_eq!(l.len(), 26);
        assert!(
            l.bytes()
                .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        );
        assert_eq!(random_base32(0).unwrap(), "");
    }
}
