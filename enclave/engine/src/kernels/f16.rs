//! IEEE half-precision conversions for GGML block scales.
//!
//! Written out rather than pulled from a crate: the kernels need only these two scalar
//! conversions, and `f32_to_f16` must round exactly like C's `(ggml_fp16_t)` cast
//! (to nearest, ties to even) so activation scales match llama.cpp's.

/// Widens an f16 bit pattern to f32 (exact: every f16 is an f32).
#[inline(always)]
pub(crate) fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h as u32) & 0x8000) << 16;
    let mag = (h as u32) & 0x7fff;
    if mag >= 0x7c00 {
        // Infinity or NaN: all-ones exponent, mantissa carried over.
        return f32::from_bits(sign | 0x7f80_0000 | ((mag & 0x03ff) << 13));
    }
    // Normals and subnormals alike: put the 15 magnitude bits where an f32's exponent and
    // mantissa sit, then rescale by 2^112 (the exponent bias difference); both steps are
    // exact, and the multiply normalises subnormals for free.
    let v = f32::from_bits(mag << 13) * f32::from_bits(0x7780_0000); // 2^112
    f32::from_bits(sign | v.to_bits())
}

/// Narrows an f32 to the nearest f16 (ties to even), returned as bits.
pub(crate) fn f32_to_f16(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x007f_ffff;
    if exp == 0xff {
        // Infinity stays infinity; NaN stays a (quiet) NaN.
        return sign | 0x7c00 | if man != 0 { 0x0200 } else { 0 };
    }
    let e = exp - 127 + 15; // the f16 biased exponent
    if e >= 0x1f {
        return sign | 0x7c00; // overflow to infinity
    }
    if e <= 0 {
        // Subnormal f16 (or zero): shift the full 24-bit significand right.
        if e < -10 {
            return sign; // below half the smallest subnormal: rounds to zero
        }
        let full = man | 0x0080_0000;
        let shift = (14 - e) as u32; // 13 dropped bits plus the exponent deficit
        let half = full >> shift;
        let rem = full & ((1 << shift) - 1);
        let mid = 1 << (shift - 1);
        let up = rem > mid || (rem == mid && (half & 1) == 1);
        return sign | (half + up as u32) as u16;
    }
    let half = ((e as u32) << 10) | (man >> 13);
    let rem = man & 0x1fff;
    let up = rem > 0x1000 || (rem == 0x1000 && (half & 1) == 1);
    // A carry out of the mantissa bumps the exponent, which is the correct rounding
    // (up to infinity at the top).
    sign | (half + up as u32) as u16
}

/// `x` rounded through f16 and back: the value llama.cpp stores for a block scale.
#[inline]
pub(crate) fn round_f16(x: f32) -> f32 {
    f16_to_f32(f32_to_f16(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_f16() {
        for h in 0..=u16::MAX {
            let f = f16_to_f32(h);
            if f.is_nan() {
                assert!(f16_to_f32(f32_to_f16(f)).is_nan());
            } else {
                assert_eq!(f32_to_f16(f), h, "bits {h:#06x} -> {f}");
            }
        }
    }

    #[test]
    fn rounds_to_nearest_even() {
        // 1 + 2^-11 lies exactly between 1 and the next f16 (1 + 2^-10): ties to even (1).
        assert_eq!(f32_to_f16(1.0 + 2f32.powi(-11)), 0x3c00);
        // 1 + 3 * 2^-11 is between 1 + 2^-10 (odd) and 1 + 2^-9 (even): rounds up.
        assert_eq!(f32_to_f16(1.0 + 3.0 * 2f32.powi(-11)), 0x3c02);
        assert_eq!(f32_to_f16(65520.0), 0x7c00); // rounds to infinity
        assert_eq!(f32_to_f16(65504.0), 0x7bff);
        assert_eq!(f32_to_f16(2f32.powi(-25)), 0); // tie between 0 and the least subnormal
        assert_eq!(f32_to_f16(1.5 * 2f32.powi(-25)), 1);
    }
}
