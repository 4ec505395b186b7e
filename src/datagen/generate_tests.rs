//! Tests of the value generators.

use super::*;

fn spec(kind: GenSpec, nulls: f64) -> ValueGen {
    ValueGen::from_spec(&ValueSpec { kind, nulls })
}

fn sample(g: &ValueGen, n: u64) -> Vec<Value> {
    let mut rng = rng_for(42, 1, 0);
    (0..n).map(|i| g.generate(i, &mut rng)).collect()
}

#[test]
fn int_stays_in_range_and_covers_it() {
    let vals = sample(&spec(GenSpec::Int { lo: 10, hi: 19 }, 0.0), 5000);
    let mut seen = [0u32; 10];
    for v in vals {
        let Value::Int(i) = v else { panic!("{v:?}") };
        assert!((10..=19).contains(&i));
        seen[(i - 10) as usize] += 1;
    }
    // uniform: each of 10 values near 500
    assert!(seen.iter().all(|c| (400..600).contains(c)), "{seen:?}");
}

#[test]
fn one_of_follows_its_weights() {
    let g = spec(
        GenSpec::OneOf {
            values: vec![Literal::Text("a".into()), Literal::Text("b".into())],
            weights: Some(vec![9.0, 1.0]),
        },
        0.0,
    );
    let a = sample(&g, 10_000).iter().filter(|v| **v == Value::Text("a".into())).count();
    assert!((8_700..9_300).contains(&a), "{a}");
}

#[test]
fn null_fraction_is_respected() {
    let g = spec(GenSpec::Bool, 0.25);
    let nulls = sample(&g, 10_000).iter().filter(|v| **v == Value::Null).count();
    assert!((2_250..2_750).contains(&nulls), "{nulls}");
}

#[test]
fn same_seed_same_values_other_seed_other_values() {
    let g = spec(GenSpec::Fake(FakeKind::Email), 0.0);
    let a: Vec<Value> = (0..50).map(|i| g.generate(i, &mut rng_for(7, 0, 3))).collect();
    let b: Vec<Value> = (0..50).map(|i| g.generate(i, &mut rng_for(7, 0, 3))).collect();
    let c: Vec<Value> = (0..50).map(|i| g.generate(i, &mut rng_for(8, 0, 3))).collect();
    assert_eq!(a, b);
    assert_ne!(a, c);
    let Value::Text(email) = &a[0] else { panic!() };
    assert!(email.contains('@'), "{email}");
}

#[test]
fn keys_point_into_the_parent_table() {
    let g = spec(GenSpec::KeyOf { table: "t".into(), rows: 100 }, 0.0);
    for v in sample(&g, 2000) {
        let Value::Int(k) = v else { panic!() };
        assert!((1..=100).contains(&k));
    }
}

#[test]
fn varchar_limit_cuts_text() {
    let g = spec(GenSpec::Words { min: 20, max: 30 }, 0.0).with_max_len(Some(12));
    for v in sample(&g, 50) {
        let Value::Text(s) = v else { panic!() };
        assert!(s.chars().count() <= 12);
    }
}

#[test]
fn zipf_follows_its_law() {
    let g = spec(GenSpec::Zipf { lo: 10, hi: 109, skew: 1.0 }, 0.0);
    let mut counts = [0u32; 100];
    for v in sample(&g, 50_000) {
        let Value::Int(i) = v else { panic!("{v:?}") };
        counts[(i - 10) as usize] += 1;
    }
    // Rank 1 takes 1/H(100) ≈ 19.3%; rank k about 1/k of rank 1.
    let share = counts[0] as f64 / 50_000.0;
    assert!((0.18..0.21).contains(&share), "{share}");
    let ratio = counts[1] as f64 / counts[0] as f64;
    assert!((0.45..0.55).contains(&ratio), "{ratio}");
    assert!(counts[99] > 0 && counts[99] < counts[9], "{counts:?}");
}

#[test]
fn increasing_timestamps_rise_with_the_row() {
    let g = spec(GenSpec::Increasing { lo: 0, hi: 1_000_000 }, 0.0).with_rows(1001);
    let mut rng = rng_for(1, 2, 3);
    let vals: Vec<i64> = (0..1001)
        .map(|row| match g.generate(row, &mut rng) {
            Value::Timestamp(t) => t,
            v => panic!("{v:?}"),
        })
        .collect();
    // Each row within its step (999 µs) of the way; never out of [lo, hi).
    let step = 1_000_000.0 / 1001.0;
    for (row, t) in vals.iter().enumerate() {
        let low = (row as f64 * step) as i64;
        assert!((low..=low + step as i64 + 1).contains(t), "row {row}: {t}");
        assert!((0..1_000_000).contains(t));
    }
}

#[test]
fn json_objects_have_their_shape() {
    let shape = vec![
        ("n".to_string(), ValueSpec { kind: GenSpec::Int { lo: 1, hi: 3 }, nulls: 0.0 }),
        ("at".to_string(), ValueSpec { kind: GenSpec::default_date(), nulls: 0.0 }),
        ("maybe".to_string(), ValueSpec { kind: GenSpec::Bool, nulls: 1.0 }),
    ];
    for v in sample(&spec(GenSpec::Json(shape), 0.0), 200) {
        let Value::Json(text) = v else { panic!("{v:?}") };
        let j: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!((1..=3).contains(&j["n"].as_i64().unwrap()), "{j}");
        assert!(j["at"].as_str().unwrap().starts_with("202"), "{j}");
        assert!(j["maybe"].is_null());
    }
}

#[test]
fn arrays_have_lengths_in_range() {
    let of = Box::new(ValueSpec { kind: GenSpec::Uuid, nulls: 0.0 });
    let mut seen = [0u32; 5];
    for v in sample(&spec(GenSpec::Array { of, min: 2, max: 4 }, 0.0), 3000) {
        let Value::Array(items) = v else { panic!("{v:?}") };
        assert!(items.iter().all(|i| matches!(i, Value::Uuid(_))));
        seen[items.len()] += 1;
    }
    assert_eq!(&seen[..2], &[0, 0]);
    assert!(seen[2..].iter().all(|c| (900..1100).contains(c)), "{seen:?}");
}

#[test]
fn generated_emails_are_distinct_like_peoples() {
    let g = spec(GenSpec::Fake(FakeKind::Email), 0.0);
    let mut rng = rng_for(7, 0, 0);
    let emails: std::collections::HashSet<String> = (0..20_000)
        .map(|i| match g.generate(i, &mut rng) {
            Value::Text(s) => s,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(emails.len(), 20_000, "a unique index on an email column holds on the generated rows");
}

#[test]
fn a_requests_distinct_text_never_repeats_a_loaded_rows_nor_another_loops() {
    // One-word heads from a small vocabulary repeat often, so only the
    // numbers woven in keep these apart: loaded row i and request i of a
    // loop would carry the same one if requests counted as rows do.
    let g = spec(GenSpec::Words { min: 1, max: 1 }, 0.0).with_unique(true);
    let text = |v: Value| match v {
        Value::Text(s) => s,
        other => panic!("{other:?}"),
    };
    let mut rng = rng_for(3, 0, 0);
    let mut seen: std::collections::HashSet<String> = (0..5_000).map(|i| text(g.generate(i, &mut rng))).collect();
    for lane in 0..2 {
        let mut rng = rng_for(3, 1, lane);
        for n in 0..5_000 {
            let v = text(g.draw(n, lane, &mut rng));
            assert!(seen.insert(v.clone()), "request {n} of loop {lane} repeats {v}");
        }
    }
    // So do emails, which are always distinct.
    let email = spec(GenSpec::Fake(FakeKind::Email), 0.0);
    let (Value::Text(row), Value::Text(req)) = (email.generate(17, &mut rng), email.draw(17, 0, &mut rng)) else {
        panic!("emails are text")
    };
    assert!(row.contains("17@") && req.contains("1000000000000017@"), "{row} {req}");
}
