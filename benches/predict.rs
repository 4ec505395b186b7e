//! The prediction against the real run: `rehearse predict` for
//! `expand-backfill` of `scenarios/add-column-default.toml`, fitted at
//! scales 0.05, 0.1 and 0.2 (100k–400k orders), predicted at scale 1
//! (2M), then rehearsed at scale 1 in the same run on the same machine.
//! Prints each step's predicted and measured duration, their ratio, and
//! the whole migration's: the target is a ratio within 0.7–1.3.
//! `REHEARSE_PREDICT_SCALES` and `REHEARSE_PREDICT_AT` change the sizes.

use std::path::Path;

use rehearse::postgres::BackendArg;
use rehearse::predict::{Request, Target, predict};
use rehearse::rehearsal::RunOptions;
use rehearse::report::{Figure, Metric, ms_label};

fn env_f64s(name: &str, default: &[f64]) -> Vec<f64> {
    std::env::var(name).ok().map_or(default.to_vec(), |s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
}

fn line(f: &Figure) {
    let (Some(p), Some(a)) = (f.predicted, f.actual) else { return };
    let k = f.fit.as_ref().and_then(|x| x.exponent).map_or("-".into(), |k| format!("n^{k:.2}"));
    let step = f.step.map_or("the migration".into(), |s| format!("{s} {}", f.name));
    let trust = if f.trusted { "" } else { "  (not trusted)" };
    let range = f.range.map_or("-".into(), |[l, h]| format!("{}–{}", ms_label(l), ms_label(h)));
    println!(
        "  {step:<24} {k:>7} predicted {:>9} (range {range:>17})  measured {:>9}  ratio {:.2}{trust}",
        ms_label(p),
        ms_label(a),
        p / a
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("predict: benchmark");
        return;
    }
    let scales = env_f64s("REHEARSE_PREDICT_SCALES", &[0.05, 0.1, 0.2]);
    let at = env_f64s("REHEARSE_PREDICT_AT", &[1.0])[0];
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/add-column-default.toml");
    let req =
        Request { path: &path, strategy: "expand-backfill", scales: &scales, target: Target::Scale(at), verify: true };
    let opts = RunOptions {
        reuse_existing: false,
        keep_tables: false,
        observe_interval: std::time::Duration::from_millis(100),
        replica_url: None,
        replicas: None,
        load_streams: 2,
        progress: false,
        rollback: false,
    };
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let started = std::time::Instant::now();
    let done = rt.block_on(predict(&req, &BackendArg::Local, &[], &opts)).expect("the prediction runs");
    let p = &done.prediction;
    let json = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/predict-bench.json");
    let doc = serde_json::json!({ "prediction": p, "reports": done.reports });
    if std::fs::write(&json, serde_json::to_string_pretty(&doc).expect("serializes")).is_ok() {
        println!("the prediction and its reports: {}", json.display());
    }
    println!(
        "predict expand-backfill: fitted at scales {scales:?} ({} rows of {}), predicted at scale {at} ({} rows), then measured there; {:.0}s in all",
        p.runs.iter().map(|r| r.rows.to_string()).collect::<Vec<_>>().join("/"),
        p.table,
        p.target_rows,
        started.elapsed().as_secs_f64()
    );
    for f in p.figures.iter().filter(|f| f.metric == Metric::Duration) {
        line(f);
    }
    line(&p.total);
    for note in &p.notes {
        println!("  note: {note}");
    }
    let (Some(pred), Some(act)) = (p.total.predicted, p.total.actual) else {
        println!("no prediction, or the target's run did not complete");
        std::process::exit(1);
    };
    let ratio = pred / act;
    let within = (0.7..=1.3).contains(&ratio);
    let in_range = p.total.range.is_some_and(|[l, h]| (l..=h).contains(&act));
    println!(
        "migration: predicted {} / measured {} = {ratio:.2} ({} the 0.7–1.3 target; {} its range); the prediction {} trusted",
        ms_label(pred),
        ms_label(act),
        if within { "within" } else { "OUTSIDE" },
        if in_range { "within" } else { "OUTSIDE" },
        if p.trusted { "was" } else { "was NOT" }
    );
}
