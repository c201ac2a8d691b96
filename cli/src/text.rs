//! The text output's pieces: sizes, owners, fill levels, holders, tables.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::json::{Fill, HolderEntry};

/// `1536` as `1.5 KiB`; below 1 KiB in bytes.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else if value < 10.0 {
        format!("{value:.1} {}", UNITS[unit])
    } else {
        format!("{value:.0} {}", UNITS[unit])
    }
}

/// A rate with its unit: `12.3k msg/s`, `4.5 MiB/s`.
pub fn rate(per_second: f64, unit: &str) -> String {
    let (value, prefix) = if per_second >= 1e9 {
        (per_second / 1e9, "G")
    } else if per_second >= 1e6 {
        (per_second / 1e6, "M")
    } else if per_second >= 1e3 {
        (per_second / 1e3, "k")
    } else {
        (per_second, "")
    };
    format!("{value:.1}{prefix} {unit}")
}

/// `37% of 64 KiB` or `3/8 messages`.
pub fn fill(fill: Option<&Fill>) -> String {
    match fill {
        None => "-".to_owned(),
        Some(f) if f.unit == "messages" => format!("{}/{} msgs", f.used, f.capacity),
        Some(f) => {
            let percent = if f.capacity == 0 {
                0.0
            } else {
                100.0 * f.used as f64 / f.capacity as f64
            };
            format!("{percent:.0}% of {}", bytes(f.capacity))
        }
    }
}

/// The user name of `uid` from /etc/passwd, else the number.
pub fn owner(uid: u32) -> String {
    static USERS: OnceLock<HashMap<u32, String>> = OnceLock::new();
    let users = USERS.get_or_init(|| {
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        passwd
            .lines()
            .filter_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let uid = fields.nth(1)?.parse().ok()?;
                Some((uid, name.to_owned()))
            })
            .collect()
    });
    users.get(&uid).cloned().unwrap_or_else(|| uid.to_string())
}

/// One holder: `sender 1234`, `receiver dead (was 1234)`, `subscriber#2 -`.
pub fn holder(h: &HolderEntry) -> String {
    let role = match h.index {
        Some(i) => format!("{}#{i}", h.role),
        None => h.role.clone(),
    };
    match (h.live, h.pid) {
        (true, Some(pid)) => format!("{role} {pid}"),
        (true, None) => format!("{role} live"),
        (false, Some(pid)) => format!("{role} dead (was {pid})"),
        (false, None) => format!("{role} -"),
    }
}

/// The holders in a listing's column: the live ones with their pids, and how
/// many dead ones were left.
pub fn holders_summary(holders: &[HolderEntry]) -> String {
    let live: Vec<String> = holders
        .iter()
        .filter(|h| h.live)
        .map(|h| match h.pid {
            Some(pid) => format!("{}:{pid}", h.role),
            None => h.role.clone(),
        })
        .collect();
    let dead = holders
        .iter()
        .filter(|h| !h.live && h.pid.is_some())
        .count();
    let mut parts = live;
    if dead > 0 {
        parts.push(format!("{dead} dead"));
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

/// Prints rows under a header, each column as wide as its widest cell; the last
/// column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut out = String::new();
        for (i, cell) in cells.enumerate() {
            if i + 1 == widths.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        println!("{}", out.trim_end());
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
}
