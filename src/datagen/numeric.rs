//! numeric's binary format.

use bytes::{BufMut, BytesMut};

/// Writes a decimal string (`-123.4500`) in numeric's binary format:
/// digit count, weight, sign, display scale, then base-10000 digits.
pub(super) fn encode_numeric(text: &str, out: &mut BytesMut) -> Option<()> {
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    if int_part.is_empty() && frac_part.is_empty()
        || !int_part.chars().chain(frac_part.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let int_part = int_part.trim_start_matches('0');
    let dscale = frac_part.len() as u16;
    // Left-pad the integer part and right-pad the fraction to whole groups.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let mut all = String::with_capacity(int_pad + int_part.len() + frac_part.len() + frac_pad);
    all.extend(std::iter::repeat_n('0', int_pad));
    all.push_str(int_part);
    let int_groups = all.len() / 4;
    all.push_str(frac_part);
    all.extend(std::iter::repeat_n('0', frac_pad));
    let mut groups: Vec<i16> =
        all.as_bytes().chunks(4).map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + (d - b'0') as i16)).collect();
    let mut weight = int_groups as i16 - 1;
    // Strip leading zero groups (each lowers the weight) and trailing ones.
    let lead = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..lead);
    weight -= lead as i16;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i16(groups.len() as i16);
    out.put_i16(weight);
    out.put_u16(if negative && !groups.is_empty() { 0x4000 } else { 0 });
    out.put_u16(dscale);
    for g in groups {
        out.put_i16(g);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(text: &str) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode_numeric(text, &mut b).unwrap();
        b.to_vec()
    }

    fn be16(v: &[i16]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_be_bytes()).collect()
    }

    #[test]
    fn numeric_binary_format() {
        // 123.45: one integer group (123), one fraction group (4500), weight 0
        assert_eq!(numeric("123.45"), be16(&[2, 0, 0, 2, 123, 4500]));
        // 10000: groups [1, 0000] -> trailing zero stripped, weight 1
        assert_eq!(numeric("10000"), be16(&[1, 1, 0, 0, 1]));
        // -0.0001: weight -1, digit 1, negative
        assert_eq!(numeric("-0.0001"), be16(&[1, -1, 0x4000, 4, 1]));
        assert_eq!(numeric("0"), be16(&[0, 0, 0, 0]));
    }
}
