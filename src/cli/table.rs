//! Plain-text tables for the terminal: a header, then one line per row, columns padded.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let text = table(["A", "LONGER"], [vec!["wide cell".into(), "x".into()], vec!["b".into(), "".into()]]);
        assert_eq!(text, "A          LONGER\nwide cell  x\nb\n");
    }
}
