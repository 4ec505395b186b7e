//! The HTML report of a real run, opened in headless Chromium (Debian's
//! `chromium`): the page logs no console error, every chart has its
//! axes, and its screenshot is not blank. Without Chromium the test is
//! skipped, unless `REHEARSE_REQUIRE_CHROMIUM=1` (CI) makes that a failure.
//! `REHEARSE_KEEP_SCREENSHOT=PATH` keeps the screenshot, to look at.

use std::path::{Path, PathBuf};
use std::process::Command;

use rehearse::report::html;

use crate::common::{Sandbox, heavy, rehearse, repo, text};
use crate::report_render::naive;

fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser", "google-chrome", "chromium-headless-shell"].iter().find_map(|name| {
        std::env::var_os("PATH")?.to_str()?.split(':').map(|d| Path::new(d).join(name)).find(|p| p.is_file())
    });
    if found.is_none() && std::env::var("REHEARSE_REQUIRE_CHROMIUM").is_ok_and(|v| v == "1") {
        panic!("REHEARSE_REQUIRE_CHROMIUM=1 but no chromium on PATH");
    }
    found
}

/// Chromium, headless, on `page` with `args`: its stdout and stderr.
fn headless(browser: &Path, page: &Path, profile: &Path, args: &[&str]) -> (String, String) {
    let url = format!("file://{}", page.display());
    let out = Command::new(browser)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(["--enable-logging=stderr", "--v=0", "--hide-scrollbars", "--window-size=1100,5200"])
        .args(args)
        .arg(&url)
        .output()
        .unwrap();
    (text(&out.stdout), text(&out.stderr))
}

#[test]
fn every_chart_of_a_fixture_report_has_a_title_axes_and_a_legend() {
    let page = html(&[naive()]);
    assert!(page.starts_with("<!DOCTYPE html>"));
    // Nothing to fetch: no script, no link; the only URL is SVG's namespace.
    let bare = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!bare.contains("<script") && !bare.contains("http://") && !bare.contains("https://"), "self-contained");
    let charts = page.matches("<svg").count();
    // Latency of each query, failures, lock queue, pool.
    assert_eq!(charts, naive().series.0.len() + 3, "{page}");
    assert_eq!(page.matches("seconds since the load began").count(), charts);
    assert!(page.contains("migration step running"), "the steps are shaded and in the legend");
    assert!(!page.contains("could not be drawn"), "{page}");
}

#[test]
fn the_html_report_of_a_real_run_renders_in_chromium() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no chromium on PATH");
        return;
    };
    let _turn = heavy();
    let sandbox = Sandbox::new();
    let page = sandbox.path().join("report.html");
    let scenario = repo("scenarios/add-column-default.toml");
    let extra = ["--scale", "0.05", "--replicas", "1", "--html", page.to_str().unwrap()];
    let (code, stdout, stderr, report) = rehearse(&sandbox, &scenario, &extra);
    let r = report.unwrap_or_else(|| panic!("no report: {stderr}"));
    assert!(matches!(code, 0 | 1), "{stdout}\n{stderr}");
    sandbox.assert_clean();
    let source = std::fs::read_to_string(&page).unwrap();
    // Latency per query, failures, lock queue, pool, replica lag, WAL.
    let queries = r["series"].as_object().unwrap().len();
    assert_eq!(source.matches("<svg").count(), queries + 5, "{}", &source[..2000.min(source.len())]);

    let profile = sandbox.path().join("chromium-profile");
    let (dom, log) = headless(&browser, &page, &profile, &["--dump-dom"]);
    assert!(!log.contains(":CONSOLE"), "console messages: {log}");
    assert_eq!(dom.matches("<svg").count(), queries + 5, "Chromium parsed every chart");
    for axis in ["seconds since the load began", "latency (log scale)", "sessions", "MiB/s"] {
        assert!(dom.contains(axis), "{axis}");
    }
    let shot = sandbox.path().join("shot.png");
    let (_, log) = headless(&browser, &page, &profile, &[&format!("--screenshot={}", shot.display())]);
    assert!(shot.is_file(), "no screenshot: {log}");
    if let Ok(keep) = std::env::var("REHEARSE_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
    let (inked, colors) = ink(&shot);
    assert!(inked > 0.02, "the screenshot is blank: {:.2}% of its pixels are not white", inked * 100.0);
    assert!(colors > 8, "the screenshot has {colors} colours: the lines are not drawn");
}

/// The share of pixels that are not white, and how many colours there are.
fn ink(png_path: &Path) -> (f64, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png_path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let pixels: Vec<&[u8]> = buf[..info.buffer_size()].chunks(channels).collect();
    let inked = pixels.iter().filter(|p| p.iter().take(3).any(|c| *c < 240)).count();
    let colors: std::collections::HashSet<&[u8]> = pixels.iter().copied().collect();
    (inked as f64 / pixels.len() as f64, colors.len())
}
