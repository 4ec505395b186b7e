//! Per-row cost of each generator encoded into binary COPY format, and of
//! a whole row of the `add-column-default` orders table. Rows per second
//! here bound the loader's speed from the client side.

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rehearse::datagen::{CHUNK_ROWS, CopyColumn, CopyPlan, PgKind, ValueGen};
use rehearse::scenario::{FakeKind, GenSpec, Literal, ValueSpec};

fn column(name: &str, kind: PgKind, spec: GenSpec) -> CopyColumn {
    CopyColumn {
        name: name.into(),
        quoted: name.into(),
        kind,
        generator: ValueGen::from_spec(&ValueSpec { kind: spec, nulls: 0.0 }),
        sequence: None,
    }
}

fn plan(columns: Vec<CopyColumn>) -> CopyPlan {
    CopyPlan { table: "t".into(), columns, rows: CHUNK_ROWS * 1000, seed: 42, stream_id: 0 }
}

fn generators() -> Vec<(&'static str, CopyColumn)> {
    let one_of = GenSpec::OneOf {
        values: ["pending", "paid", "shipped"].map(|s| Literal::Text(s.into())).to_vec(),
        weights: Some(vec![5.0, 3.0, 2.0]),
    };
    vec![
        ("sequence", column("id", PgKind::Int8, GenSpec::Sequence { start: 1 })),
        ("int", column("n", PgKind::Int8, GenSpec::Int { lo: 1, hi: 100_000 })),
        ("one_of_weighted", column("status", PgKind::Text, one_of)),
        ("email", column("email", PgKind::Text, GenSpec::Fake(FakeKind::Email))),
        ("name", column("name", PgKind::Text, GenSpec::Fake(FakeKind::Name))),
        ("city", column("city", PgKind::Text, GenSpec::Fake(FakeKind::City))),
        ("words", column("note", PgKind::Text, GenSpec::Words { min: 1, max: 5 })),
        ("timestamp", column("at", PgKind::Timestamptz, GenSpec::Timestamp { lo: 0, hi: 800_000_000_000_000 })),
        ("numeric", column("total", PgKind::Numeric, GenSpec::Float { lo: 0.0, hi: 10_000.0 })),
        ("uuid", column("ref", PgKind::Uuid, GenSpec::Uuid)),
        ("bool", column("paid", PgKind::Bool, GenSpec::Bool)),
    ]
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode_row");
    group.throughput(Throughput::Elements(CHUNK_ROWS));
    let mut buf = BytesMut::with_capacity(4 << 20);
    for (name, col) in generators() {
        let p = plan(vec![col]);
        let mut chunk = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                buf.clear();
                chunk = (chunk + 1) % 1000;
                p.encode_chunk(chunk, &mut buf).unwrap()
            })
        });
    }
    // The orders table of add-column-default, as the loader infers it.
    let one_of = GenSpec::OneOf {
        values: ["pending", "paid", "shipped"].map(|s| Literal::Text(s.into())).to_vec(),
        weights: None,
    };
    let orders = plan(vec![
        column("id", PgKind::Int8, GenSpec::Sequence { start: 1 }),
        column("customer_id", PgKind::Int8, GenSpec::Int { lo: 1, hi: 100_000 }),
        column("status", PgKind::Text, one_of),
        column("total_cents", PgKind::Int8, GenSpec::Int { lo: 0, hi: 1_000_000 }),
        column("email", PgKind::Text, GenSpec::Fake(FakeKind::Email)),
        column("created_at", PgKind::Timestamptz, GenSpec::Timestamp { lo: 0, hi: 800_000_000_000_000 }),
    ]);
    let mut chunk = 0;
    group.bench_function("orders_row", |b| {
        b.iter(|| {
            buf.clear();
            chunk = (chunk + 1) % 1000;
            orders.encode_chunk(chunk, &mut buf).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
