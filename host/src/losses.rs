//! Losses shared by every backbone (BPR), computed by the host on view 0.

use promax_plugin_api::sdk::{Emb, EmbBuf};

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn softplus(x: f64) -> f64 {
    // Stable for large |x|.
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `mean_b softplus(s(u,neg) − s(u,pos))` with s the inner product of final embeddings;
/// accumulates its gradient into `d`. Returns the loss value.
pub fn bpr(emb: Emb<'_>, users: &[u32], pos: &[u32], neg: &[u32], d: &mut EmbBuf<'_>) -> f64 {
    let b = users.len();
    if b == 0 {
        return 0.0;
    }
    let inv_b = 1.0 / b as f64;
    let mut loss = 0.0;
    for ((&u, &p), &n) in users.iter().zip(pos).zip(neg) {
        let (eu, ep, en) = (
            emb.user(u as usize),
            emb.item(p as usize),
            emb.item(n as usize),
        );
        let x = f64::from(dot(eu, en)) - f64::from(dot(eu, ep));
        loss += softplus(x);
        // d softplus(x)/dx = sigmoid(x); x = u·n − u·p.
        let g = (sigmoid(x) * inv_b) as f32;
        for ((du, xn), xp) in d.user_mut(u as usize).iter_mut().zip(en).zip(ep) {
            *du += g * (xn - xp);
        }
        for (dp, xu) in d.item_mut(p as usize).iter_mut().zip(eu) {
            *dp -= g * xu;
        }
        for (dn, xu) in d.item_mut(n as usize).iter_mut().zip(eu) {
            *dn += g * xu;
        }
    }
    loss * inv_b
}

#[cfg(test)]
mod tests {
    use super::*;
    use promax_plugin_api::testing::{emb, emb_buf, finite_difference_check, SplitMix};

    #[test]
    fn bpr_gradient_matches_finite_differences() {
        let (nu, ni, w) = (3, 4, 5);
        let mut rng = SplitMix(3);
        let mut e: Vec<f32> = (0..(nu + ni) * w)
            .map(|_| rng.symmetric(1.0) as f32)
            .collect();
        // A repeated user and a repeated item check accumulation.
        let (users, pos, neg) = ([0u32, 1, 0, 2], [1u32, 2, 3, 1], [0u32, 3, 2, 0]);
        let mut d = vec![0f32; e.len()];
        bpr(
            emb(&e, nu, ni, w),
            &users,
            &pos,
            &neg,
            &mut emb_buf(&mut d, nu, ni, w),
        );
        let idx: Vec<usize> = (0..e.len()).collect();
        let bad = finite_difference_check(&mut e, &d, &idx, 1e-2, 1e-3, 1e-5, |x| {
            let mut scratch = vec![0f32; x.len()];
            bpr(
                emb(x, nu, ni, w),
                &users,
                &pos,
                &neg,
                &mut emb_buf(&mut scratch, nu, ni, w),
            )
        });
        assert!(bad.is_empty(), "{bad:?}");
    }

    #[test]
    fn bpr_value_by_hand() {
        // One user (1, 0), pos item (2, 0), neg item (0, 1): x = 0 − 2 → softplus(−2).
        let e = [1.0f32, 0.0, 2.0, 0.0, 0.0, 1.0];
        let mut d = [0f32; 6];
        let l = bpr(
            emb(&e, 1, 2, 2),
            &[0],
            &[0],
            &[1],
            &mut emb_buf(&mut d, 1, 2, 2),
        );
        assert!((l - (1.0 + (-2f64).exp()).ln()).abs() < 1e-9);
        assert!(softplus(800.0).is_finite() && softplus(-800.0) >= 0.0);
    }
}
