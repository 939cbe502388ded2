//! Plain-text tables for the terminal: a header, then one line per row, columns padded; and
//! the cells that carry a unit, written as the web page writes them (a media duration as a
//! player shows it, a time in the local time zone).

/// `rows` under `header`, each column as wide as its widest cell, two spaces apart.
pub fn table<const N: usize>(header: [&str; N], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut lines: Vec<Vec<String>> = vec![header.iter().map(|cell| (*cell).to_owned()).collect()];
    lines.extend(rows);
    let widths: Vec<usize> = (0..N)
        .map(|column| lines.iter().map(|row| row.get(column).map_or(0, String::len)).max().unwrap_or(0))
        .collect();
    lines
        .iter()
        .map(|row| {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, width)| format!("{cell:<width$}")).collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

/// A media duration as a player shows it: `0:07`, `4:05`, `1:00:00`.
pub fn media_duration(seconds: f64) -> String {
    let whole = seconds.max(0.0).round() as u64;
    let (hours, minutes, seconds) = (whole / 3600, whole / 60 % 60, whole % 60);
    match hours {
        0 => format!("{minutes}:{seconds:02}"),
        _ => format!("{hours}:{minutes:02}:{seconds:02}"),
    }
}

/// An RFC 3339 time from the server in the local time zone, `2026-12-03 14:05:09`; the text
/// as it is if it is not such a time.
pub fn local_time(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(at) => at.to_zoned(jiff::tz::TimeZone::system()).strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_durations_read_like_a_player() {
        assert_eq!(media_duration(7.2), "0:07");
        assert_eq!(media_duration(245.0), "4:05");
        assert_eq!(media_duration(3600.0), "1:00:00");
        assert_eq!(media_duration(36_061.0), "10:01:01");
    }

    #[test]
    fn times_are_shown_in_the_local_zone_to_the_second() {
        let shown = local_time("2026-12-03T14:05:09.123Z");
        assert_eq!(shown.len(), "2026-12-03 14:05:09".len(), "{shown}");
        assert!(shown.ends_with(":09") && shown.starts_with("2026-12-0"), "{shown}");
        assert_eq!(local_time("not a time"), "not a time");
    }

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let text = table(["A", "LONGER"], [vec!["wide cell".into(), "x".into()], vec!["b".into(), "".into()]]);
        assert_eq!(text, "A          LONGER\nwide cell  x\nb\n");
    }
}
