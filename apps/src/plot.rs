//! `tapir plot FILE.csv -o FILE.svg`: a connection's timeline (see
//! [`crate::trace`]) drawn as three stacked panels sharing the time axis:
//!
//! 1. the time-sequence graph, as tcptrace's or Wireshark's Stevens graph:
//!    SND.NXT (what was sent) and SND.UNA (what was acknowledged) in MB
//!    from the first sample, with the bytes the peer SACKed drawn above
//!    SND.UNA, retransmissions as red crosses and the samples taken in
//!    loss recovery as orange dots on SND.UNA;
//! 2. the windows: cwnd, ssthresh (while finite), bytes in flight and the
//!    peer's window, in KB;
//! 3. the RTT: SRTT and the RTO, in ms.
//!
//! A slow start, a loss, the recovery that follows and CUBIC's or Reno's
//! growth afterwards can all be read off the picture.

use crate::trace::Row;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

const WIDTH: u32 = 1200;
const PANEL_HEIGHT: u32 = 400;

/// The sequence numbers of `rows`, unwrapped (a transfer may pass 2^32)
/// and relative to the first SND.UNA, in bytes.
fn unwrap_seq(rows: &[Row], get: impl Fn(&Row) -> u32) -> Vec<f64> {
    let Some(first) = rows.first() else {
        return Vec::new();
    };
    let base = first.snd_una;
    let mut prev = base;
    let mut acc: i64 = 0;
    rows.iter()
        .map(|r| {
            let v = get(r);
            acc += i64::from(v.wrapping_sub(prev) as i32);
            prev = v;
            acc as f64
        })
        .collect()
}

/// A variable holds its value until the next sample: draw it as steps
/// (a straight line between two samples would show a cwnd that shrank
/// gradually through an RTO's silence).
fn steps(points: impl IntoIterator<Item = (f64, f64)>) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (t, v) in points {
        if let Some(&(_, prev)) = out.last() {
            out.push((t, prev));
        }
        out.push((t, v));
    }
    out
}

fn range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() {
        return 0.0..1.0;
    }
    let lo = lo.min(0.0);
    if hi <= lo {
        lo..lo + 1.0
    } else {
        lo..hi * 1.05
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

fn err(e: impl std::fmt::Display) -> String {
    format!("drawing: {e}")
}

/// Draw `rows` into an SVG at `out`; `title` goes on top.
pub fn plot(rows: &[Row], title: &str, out: &Path) -> Result<(), String> {
    if rows.is_empty() {
        return Err("the timeline has no rows".into());
    }
    let root = SVGBackend::new(out, (WIDTH, 3 * PANEL_HEIGHT + 40)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(err)?;
    let panels = root.split_evenly((3, 1));
    let t_end = rows.last().map_or(1.0, |r| r.time_s).max(1e-3);
    sequence_panel(&panels[0], rows, t_end)?;
    window_panel(&panels[1], rows, t_end)?;
    rtt_panel(&panels[2], rows, t_end)?;
    root.present().map_err(err)
}

fn legend(color: RGBColor) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
}

type Chart<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// One panel: a caption, time on x, `y_desc` on y.
fn panel<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    y_desc: &str,
    t_end: f64,
    y: std::ops::Range<f64>,
) -> Result<Chart<'a, 'b>, String> {
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_end, y)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time (s)")
        .y_desc(y_desc)
        .draw()
        .map_err(err)?;
    Ok(chart)
}

/// The series' names, top left.
fn legend_box<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>) -> Result<(), String> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE.mix(0.85))
        .draw()
        .map_err(err)
}

fn sequence_panel(area: &Area, rows: &[Row], t_end: f64) -> Result<(), String> {
    const MB: f64 = 1e6;
    let una = unwrap_seq(rows, |r| r.snd_una);
    let nxt = unwrap_seq(rows, |r| r.snd_nxt);
    let y = range(nxt.iter().chain(&una).map(|v| v / MB));
    let mut chart = panel(area, "time-sequence", "sequence (MB)", t_end, y)?;
    let t = |i: usize| rows[i].time_s;
    let series = [
        ("snd_nxt (sent)", BLUE, nxt.clone()),
        ("snd_una (acknowledged)", GREEN, una.clone()),
        (
            "snd_una + sacked",
            MAGENTA,
            una.iter()
                .zip(rows)
                .map(|(u, r)| u + r.sacked_bytes as f64)
                .collect(),
        ),
    ];
    for (name, color, values) in series {
        chart
            .draw_series(LineSeries::new(
                steps(values.iter().enumerate().map(|(i, v)| (t(i), v / MB))),
                color.stroke_width(1),
            ))
            .map_err(err)?
            .label(name)
            .legend(legend(color));
    }
    let retransmitted = (1..rows.len()).filter(|&i| rows[i].retransmits > rows[i - 1].retransmits);
    chart
        .draw_series(retransmitted.map(|i| Cross::new((t(i), una[i] / MB), 4, RED.stroke_width(2))))
        .map_err(err)?
        .label("retransmission")
        .legend(legend(RED));
    let recovering = (0..rows.len()).filter(|&i| rows[i].recovery != "open" && !rows[i].recovery.is_empty());
    let orange = RGBColor(255, 140, 0);
    chart
        .draw_series(recovering.map(|i| Circle::new((t(i), una[i] / MB), 2, orange.filled())))
        .map_err(err)?
        .label("in loss recovery")
        .legend(legend(orange));
    legend_box(&mut chart)
}

fn window_panel(area: &Area, rows: &[Row], t_end: f64) -> Result<(), String> {
    const KB: f64 = 1e3;
    let y = range(
        rows.iter()
            .flat_map(|r| [r.cwnd, r.bytes_in_flight, r.ssthresh.unwrap_or(0).min(r.cwnd * 4)])
            .map(|v| v as f64 / KB),
    );
    let mut chart = panel(area, "windows", "KB", t_end, y)?;
    let kb = |v: u64| v as f64 / KB;
    chart
        .draw_series(LineSeries::new(
            steps(rows.iter().map(|r| (r.time_s, kb(r.cwnd)))),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?
        .label("cwnd")
        .legend(legend(BLUE));
    chart
        .draw_series(LineSeries::new(
            steps(rows.iter().map(|r| (r.time_s, kb(r.bytes_in_flight)))),
            GREEN.stroke_width(1),
        ))
        .map_err(err)?
        .label("bytes in flight")
        .legend(legend(GREEN));
    // ssthresh only where it is finite, as separate pieces.
    let ss: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| r.ssthresh.map(|s| (r.time_s, kb(s))))
        .collect();
    chart
        .draw_series(LineSeries::new(steps(ss), RED.stroke_width(1)))
        .map_err(err)?
        .label("ssthresh")
        .legend(legend(RED));
    legend_box(&mut chart)
}

fn rtt_panel(area: &Area, rows: &[Row], t_end: f64) -> Result<(), String> {
    let y = range(rows.iter().flat_map(|r| [r.srtt_ms.unwrap_or(0.0), r.rto_ms]));
    let mut chart = panel(area, "round-trip time", "ms", t_end, y)?;
    chart
        .draw_series(LineSeries::new(
            steps(rows.iter().filter_map(|r| r.srtt_ms.map(|s| (r.time_s, s)))),
            BLUE.stroke_width(2),
        ))
        .map_err(err)?
        .label("srtt")
        .legend(legend(BLUE));
    chart
        .draw_series(LineSeries::new(
            steps(rows.iter().map(|r| (r.time_s, r.rto_ms))),
            RED.stroke_width(1),
        ))
        .map_err(err)?
        .label("rto")
        .legend(legend(RED));
    legend_box(&mut chart)
}

/// `tapir plot`'s arguments.
#[derive(clap::Args, Debug)]
pub struct PlotArgs {
    /// A timeline CSV (`tapir tput --trace FILE.csv`).
    pub input: std::path::PathBuf,
    /// The SVG to write.
    #[arg(short, long)]
    pub output: std::path::PathBuf,
    /// Title on top [default: the input's file name].
    #[arg(long)]
    pub title: Option<String>,
}

pub fn run(args: PlotArgs) -> Result<(), String> {
    let file = std::fs::File::open(&args.input).map_err(|e| format!("{}: {e}", args.input.display()))?;
    let rows = crate::trace::read_csv(std::io::BufReader::new(file))
        .map_err(|e| format!("{}: {e}", args.input.display()))?;
    let title = args.title.unwrap_or_else(|| {
        args.input
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    });
    plot(&rows, &title, &args.output)?;
    println!(
        "plot: {} rows, {:.3} s, to {}",
        rows.len(),
        rows.last().map_or(0.0, |r| r.time_s),
        args.output.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(t: f64, una: u32, nxt: u32) -> Row {
        Row {
            time_s: t,
            state: "ESTABLISHED".into(),
            snd_una: una,
            snd_nxt: nxt,
            rcv_nxt: 0,
            snd_wnd: 0,
            cwnd: 14480,
            ssthresh: None,
            bytes_in_flight: 0,
            sacked_bytes: 0,
            lost_bytes: 0,
            srtt_ms: Some(1.0),
            rto_ms: 200.0,
            retransmits: 0,
            recovery: "open".into(),
        }
    }

    #[test]
    fn sequence_numbers_unwrap_past_2_to_the_32() {
        let rows = [
            row(0.0, u32::MAX - 100, u32::MAX - 100),
            row(0.1, u32::MAX - 100, 900),
            row(0.2, 1900, 2900),
        ];
        assert_eq!(unwrap_seq(&rows, |r| r.snd_nxt), [0.0, 1001.0, 3001.0]);
        assert_eq!(unwrap_seq(&rows, |r| r.snd_una), [0.0, 0.0, 2001.0]);
    }
}
