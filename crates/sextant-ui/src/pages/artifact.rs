//! A preview of one artifact, shown inside the run page's sandboxed frame:
//! text (escaped), a table head for CSV and Parquet files, an image, or a
//! download link for anything a browser could run.

use maud::{html, Markup, DOCTYPE};

use crate::CSS_PATH;

pub enum Preview {
    Text(String),
    Image(String),
    Download(String),
    /// Rows of cells, the header first.
    Table(Vec<Vec<String>>),
}

pub fn render(name: &str, raw_href: &str, preview: &Preview) -> Markup {
    html! {
        (DOCTYPE)
        html { head { meta charset="utf-8"; link rel="stylesheet" href=(CSS_PATH); } body.preview {
            p { strong { (name) } " · " a href=(raw_href) target="_blank" rel="noopener" { "open raw" } }
            @match preview {
                Preview::Text(text) => pre.file { (text) },
                Preview::Image(href) => img src=(href) alt=(name) {},
                Preview::Download(href) => p { "No preview for this kind of file. " a href=(href) { "Download it" } "." },
                Preview::Table(rows) => table.grid.compact {
                    @for (idx, row) in rows.iter().enumerate() {
                        tr { @for cell in row { @if idx == 0 { th { (cell) } } @else { td { (cell) } } } }
                    }
                },
            }
        } }
    }
}
