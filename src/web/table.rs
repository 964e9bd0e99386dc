//! The tables the pages show: a caption for screen readers, a row of column headings and a row
//! per item, in a box that scrolls sideways on narrow screens.

use maud::{Markup, html};

pub struct Table<'a> {
    /// The table's `id`, for the scripts and tests that look for it.
    pub id: Option<&'a str>,
    /// Read out by screen readers; not shown.
    pub caption: &'a str,
    /// The column headings. An empty one heads a column of buttons, named for screen readers
    /// only.
    pub columns: &'a [&'a str],
}

impl<'a> Table<'a> {
    pub const fn new(caption: &'a str, columns: &'a [&'a str]) -> Table<'a> {
        Table {
            id: None,
            caption,
            columns,
        }
    }

    pub const fn id(self, id: &'a str) -> Table<'a> {
        Table {
            id: Some(id),
            ..self
        }
    }

    /// The table with a row of `cells` (its `td`s) per item.
    pub fn rows<T>(
        &self,
        items: impl IntoIterator<Item = T>,
        cells: impl Fn(T) -> Markup,
    ) -> Markup {
        html! {
            div.scroll {
                table id=[self.id] {
                    caption.sr-only { (self.caption) }
                    thead {
                        tr {
                            @for column in self.columns {
                                th scope="col" {
                                    @if column.is_empty() { span.sr-only { "Actions" } } @else { (column) }
                                }
                            }
                        }
                    }
                    tbody { @for item in items { tr { (cells(item)) } } }
                }
            }
        }
    }
}
