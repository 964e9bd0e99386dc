//! PHP's `strnatcmp`, byte for byte.
//!
//! Magento (through Laminas OAuth) sorts the encoded parameter names with
//! `uksort($params, 'strnatcmp')`, so `…[filters][2]…` sorts before
//! `…[filters][10]…`. A byte-order sort (what RFC 5849 asks for) produces a
//! different base string as soon as an index reaches 10, so we port the C
//! routine from `ext/standard/strnatcmp.c` rather than approximate it.

use std::cmp::Ordering;

/// Natural-order comparison with PHP's exact rules: leading zeros skipped at
/// the start only, whitespace skipped, digit runs compared by magnitude
/// (right-aligned) unless either starts with `0` (then left-aligned, as a
/// fraction).
pub(crate) fn strnatcmp(a: &[u8], b: &[u8]) -> Ordering {
    if a.is_empty() || b.is_empty() {
        return a.len().cmp(&b.len());
    }
    // C reads the terminating NUL when it walks one past the end; `at` mimics
    // that so the port stays line-for-line comparable with the original.
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);

    let (mut ai, mut bi) = (0usize, 0usize);
    let (mut ca, mut cb) = (at(a, 0), at(b, 0));

    while ca == b'0' && ai + 1 < a.len() && at(a, ai + 1).is_ascii_digit() {
        ai += 1;
        ca = at(a, ai);
    }
    while cb == b'0' && bi + 1 < b.len() && at(b, bi + 1).is_ascii_digit() {
        bi += 1;
        cb = at(b, bi);
    }

    loop {
        while is_c_space(ca) {
            ai += 1;
            ca = at(a, ai);
        }
        while is_c_space(cb) {
            bi += 1;
            cb = at(b, bi);
        }

        if ca.is_ascii_digit() && cb.is_ascii_digit() {
            let fractional = ca == b'0' || cb == b'0';
            let result = if fractional {
                compare_left(a, &mut ai, b, &mut bi)
            } else {
                compare_right(a, &mut ai, b, &mut bi)
            };
            if result != Ordering::Equal {
                return result;
            }
            let (a_end, b_end) = (ai >= a.len(), bi >= b.len());
            match (a_end, b_end) {
                (true, true) => return Ordering::Equal,
                (true, false) => return Ordering::Less,
                (false, true) => return Ordering::Greater,
                (false, false) => {
                    ca = at(a, ai);
                    cb = at(b, bi);
                }
            }
        }

        match ca.cmp(&cb) {
            Ordering::Equal => {}
            unequal => return unequal,
        }

        ai += 1;
        bi += 1;
        let (a_end, b_end) = (ai >= a.len(), bi >= b.len());
        match (a_end, b_end) {
            (true, true) => return Ordering::Equal,
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (false, false) => {
                ca = at(a, ai);
                cb = at(b, bi);
            }
        }
    }
}

/// C `isspace` in the "C" locale.
fn is_c_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn digit_at(s: &[u8], i: usize) -> bool {
    s.get(i).is_some_and(u8::is_ascii_digit)
}

/// Right-aligned numbers: the longer run wins; for equal lengths the first
/// differing digit decides (remembered as `bias`).
fn compare_right(a: &[u8], ai: &mut usize, b: &[u8], bi: &mut usize) -> Ordering {
    let mut bias = Ordering::Equal;
    loop {
        let (da, db) = (digit_at(a, *ai), digit_at(b, *bi));
        match (da, db) {
            (false, false) => return bias,
            (false, true) => return Ordering::Less,
            (true, false) => return Ordering::Greater,
            (true, true) => {
                if bias == Ordering::Equal {
                    bias = a[*ai].cmp(&b[*bi]);
                }
            }
        }
        *ai += 1;
        *bi += 1;
    }
}

/// Left-aligned numbers (a leading zero makes them fractions): the first
/// differing digit wins.
fn compare_left(a: &[u8], ai: &mut usize, b: &[u8], bi: &mut usize) -> Ordering {
    loop {
        let (da, db) = (digit_at(a, *ai), digit_at(b, *bi));
        match (da, db) {
            (false, false) => return Ordering::Equal,
            (false, true) => return Ordering::Less,
            (true, false) => return Ordering::Greater,
            (true, true) => match a[*ai].cmp(&b[*bi]) {
                Ordering::Equal => {}
                unequal => return unequal,
            },
        }
        *ai += 1;
        *bi += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::strnatcmp;
    use std::cmp::Ordering::*;

    fn cmp(a: &str, b: &str) -> std::cmp::Ordering {
        strnatcmp(a.as_bytes(), b.as_bytes())
    }

    #[test]
    fn digit_runs_compare_by_magnitude() {
        assert_eq!(cmp("img12.png", "img10.png"), Greater);
        assert_eq!(cmp("a2", "a10"), Less);
        assert_eq!(
            cmp(
                "searchCriteria%5Bfilter_groups%5D%5B2%5D",
                "searchCriteria%5Bfilter_groups%5D%5B10%5D"
            ),
            Less
        );
    }

    #[test]
    fn leading_zero_means_fraction() {
        // PHP: strnatcmp("x01", "x1") = -1 and strnatcmp("x02", "x1") = -1.
        assert_eq!(cmp("x01", "x1"), Less);
        assert_eq!(cmp("x02", "x1"), Less);
        assert_eq!(cmp("x1.05", "x1.5"), Less);
    }

    #[test]
    fn leading_zeros_at_the_start_are_ignored() {
        assert_eq!(cmp("01", "1"), Equal);
        assert_eq!(cmp("007", "10"), Less);
    }

    #[test]
    fn prefix_sorts_first_and_empty_is_smallest() {
        assert_eq!(cmp("abc", "abcd"), Less);
        assert_eq!(cmp("", "a"), Less);
        assert_eq!(cmp("", ""), Equal);
        assert_eq!(cmp("oauth_nonce", "oauth_consumer_key"), Greater);
    }

    #[test]
    fn upper_case_sorts_before_lower_case() {
        assert_eq!(cmp("Z", "a"), Less);
    }
}
