//! Charts drawn on the server as SVG, so that the board needs no chart
//! library and no script to show them.

use maud::{Markup, html};

/// Horizontal bars, one per `(label, value)`, scaled to the largest value.
pub(crate) fn bars(id: &str, items: &[(String, u64)]) -> Markup {
    let row = 26u32;
    let label_width = 150u32;
    let bar_width = 320u32;
    let height = row * u32::try_from(items.len()).unwrap_or(0) + 6;
    let max = items.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    html! {
        svg id=(id) class="chart" width=(label_width + bar_width + 60) height=(height)
            role="img" xmlns="http://www.w3.org/2000/svg" {
            @for (i, (label, value)) in items.iter().enumerate() {
                @let y = row * u32::try_from(i).unwrap_or(0) + 4;
                @let w = scaled(*value, max, bar_width);
                text x="0" y=(y + 15) { (label) }
                rect x=(label_width) y=(y) width=(w) height="18" fill="#1f5fa8" rx="2" {}
                text x=(label_width + w + 6) y=(y + 15) data-value=(value) { (value) }
            }
        }
    }
}

fn scaled(value: u64, max: u64, width: u32) -> u32 {
    let w = u128::from(value) * u128::from(width) / u128::from(max);
    u32::try_from(w).unwrap_or(width)
}

/// A small line of rates (0–1) over months; gaps where a month has no rate.
pub(crate) fn trend(points: &[(String, Option<f64>)]) -> Markup {
    let width = 180.0_f64;
    let height = 36.0_f64;
    let n = points.len().max(2) - 1;
    let x = |i: usize| 4.0 + (width - 8.0) * (i as f64) / (n as f64);
    let y = |r: f64| height - 4.0 - (height - 8.0) * r.clamp(0.0, 1.0);
    let mut path = String::new();
    let mut pen_down = false;
    for (i, (_, rate)) in points.iter().enumerate() {
        match rate {
            Some(r) => {
                let verb = if pen_down { 'L' } else { 'M' };
                path.push_str(&format!("{verb}{:.1},{:.1} ", x(i), y(*r)));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    html! {
        svg class="trend" width=(width) height=(height) role="img" xmlns="http://www.w3.org/2000/svg" {
            line x1="4" y1=(height - 4.0) x2=(width - 4.0) y2=(height - 4.0) stroke="#d8dee6" {}
            path d=(path.trim_end()) fill="none" stroke="#1f5fa8" stroke-width="2" {}
            @for (i, (month, rate)) in points.iter().enumerate() {
                @if let Some(r) = rate {
                    circle cx=(format!("{:.1}", x(i))) cy=(format!("{:.1}", y(*r))) r="2.5" fill="#1f5fa8" {
                        title { (month) ": " (percent(Some(*r))) }
                    }
                }
            }
        }
    }
}

/// A rate as a percentage, or a dash when there is none.
pub(crate) fn percent(rate: Option<f64>) -> String {
    match rate {
        Some(r) => format!("{:.1}%", r * 100.0),
        None => "—".to_owned(),
    }
}
