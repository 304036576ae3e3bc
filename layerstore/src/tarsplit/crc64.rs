//! CRC-64/ISO as Go's `hash/crc64` computes it with the ISO table (the
//! checksum tar-split stores for every file), sliced by 16 for speed.

const POLY: u64 = 0xD800_0000_0000_0000; // ISO 3309, reflected

const SLICES: usize = 16;

const fn tables() -> [[u64; 256]; SLICES] {
    let mut t = [[0u64; 256]; SLICES];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < SLICES {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

static TABLES: [[u64; 256]; SLICES] = tables();

/// A running CRC-64/ISO.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Crc64 {
    state: u64, // the inverted register, as Go keeps it between calls
}

impl Crc64 {
    /// Feed `data`.
    pub(crate) fn update(&mut self, data: &[u8]) {
        let t = &TABLES;
        let word = |c: &[u8]| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        // Eight bytes through the tables `base + 7` down to `base`.
        let fold = |v: u64, base: usize| {
            t[base + 7][(v & 0xff) as usize]
                ^ t[base + 6][((v >> 8) & 0xff) as usize]
                ^ t[base + 5][((v >> 16) & 0xff) as usize]
                ^ t[base + 4][((v >> 24) & 0xff) as usize]
                ^ t[base + 3][((v >> 32) & 0xff) as usize]
                ^ t[base + 2][((v >> 40) & 0xff) as usize]
                ^ t[base + 1][((v >> 48) & 0xff) as usize]
                ^ t[base][(v >> 56) as usize]
        };
        let mut crc = !self.state;
        let mut chunks = data.chunks_exact(16);
        for c in &mut chunks {
            crc = fold(crc ^ word(&c[..8]), 8) ^ fold(word(&c[8..]), 0);
        }
        let mut rest = chunks.remainder();
        if rest.len() >= 8 {
            crc = fold(crc ^ word(&rest[..8]), 0);
            rest = &rest[8..];
        }
        for &b in rest {
            crc = t[0][((crc ^ u64::from(b)) & 0xff) as usize] ^ (crc >> 8);
        }
        self.state = !crc;
    }

    /// The checksum as tar-split stores it: 8 big-endian bytes.
    pub(crate) fn sum(&self) -> [u8; 8] {
        self.state.to_be_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::Crc64;

    fn crc(data: &[u8]) -> u64 {
        let mut c = Crc64::default();
        c.update(data);
        u64::from_be_bytes(c.sum())
    }

    #[test]
    fn check_value_matches_go_crc64_iso() {
        // CRC-64/GO-ISO check value.
        assert_eq!(crc(b"123456789"), 0xb909_56c7_75a4_1001);
        assert_eq!(crc(b""), 0);
    }

    #[test]
    fn sliced_equals_bytewise_at_every_length_and_offset() {
        let data: Vec<u8> = (0..300u32).map(|i| (i * 131 % 256) as u8).collect();
        let bytewise = |d: &[u8]| {
            let mut c = Crc64::default();
            for b in d {
                c.update(std::slice::from_ref(b));
            }
            u64::from_be_bytes(c.sum())
        };
        for start in 0..17 {
            for len in 0..(data.len() - start) {
                let d = &data[start..start + len];
                assert_eq!(crc(d), bytewise(d), "start {start} len {len}");
            }
        }
    }

    #[test]
    fn split_updates_equal_one_update() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut c = Crc64::default();
        for part in data.chunks(13) {
            c.update(part);
        }
        assert_eq!(u64::from_be_bytes(c.sum()), crc(&data));
    }
}
