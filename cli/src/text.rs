//! Aligned text tables for a terminal.

use serde_json::Value;

/// A JSON value as a cell: strings bare, null as `-`.
pub fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub fn clip(text: String, max: usize) -> String {
    if text.chars().count() > max {
        text.chars().take(max - 1).collect::<String>() + "…"
    } else {
        text
    }
}

/// Rows under a header, columns padded to their widest cell, trailing spaces trimmed.
pub fn aligned(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |row: &[String]| {
        let mut out = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
            .collect::<Vec<_>>()
            .join("  ");
        out.truncate(out.trim_end().len());
        out + "\n"
    };
    let head: Vec<String> = head.iter().map(|h| (*h).to_owned()).collect();
    let mut out = line(&head);
    for row in rows {
        out += &line(row);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_long_cells_are_clipped() {
        let rows = vec![
            vec!["a".to_owned(), "x".to_owned()],
            vec!["long".to_owned(), clip("abcdef".to_owned(), 4)],
        ];
        assert_eq!(
            aligned(&["K", "V"], &rows),
            "K     V\na     x\nlong  abc…\n"
        );
        assert_eq!(cell(&Value::Null), "-");
        assert_eq!(cell(&serde_json::json!(503)), "503");
    }
}
