//! A Google Merchant Center product feed (RSS 2.0 with the `g:` namespace) for one store view,
//! written with quick-xml, which escapes every text it writes.

use std::io::Write;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

pub const NAMESPACE: &str = "http://base.google.com/ns/1.0";
const TITLE_MAX: usize = 150;
const DESCRIPTION_MAX: usize = 5000;
const ADDITIONAL_IMAGES_MAX: usize = 10;

/// One product as the feed shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedItem {
    pub id: String,
    pub title: String,
    /// Plain text (HTML already removed).
    pub description: String,
    pub link: String,
    pub image_link: String,
    pub additional_image_links: Vec<String>,
    /// `in_stock`, `out_of_stock`, `preorder` or `backorder`.
    pub availability: &'static str,
    /// `19.90 EUR`
    pub price: String,
    pub brand: Option<String>,
    pub gtin: Option<String>,
    pub mpn: Option<String>,
}

pub struct FeedWriter<W: Write> {
    xml: Writer<W>,
    pub items: u64,
}

impl<W: Write> FeedWriter<W> {
    pub fn new(out: W, title: &str, link: &str) -> std::io::Result<FeedWriter<W>> {
        let mut xml = Writer::new_with_indent(out, b' ', 1);
        xml.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        let mut rss = BytesStart::new("rss");
        rss.push_attribute(("version", "2.0"));
        rss.push_attribute(("xmlns:g", NAMESPACE));
        xml.write_event(Event::Start(rss))?;
        xml.write_event(Event::Start(BytesStart::new("channel")))?;
        text(&mut xml, "title", title)?;
        text(&mut xml, "link", link)?;
        text(&mut xml, "description", &format!("Products of {title}"))?;
        Ok(FeedWriter { xml, items: 0 })
    }

    pub fn item(&mut self, item: &FeedItem) -> std::io::Result<()> {
        let xml = &mut self.xml;
        xml.write_event(Event::Start(BytesStart::new("item")))?;
        text(xml, "g:id", &item.id)?;
        text(xml, "g:title", &cut(&item.title, TITLE_MAX))?;
        text(
            xml,
            "g:description",
            &cut(&item.description, DESCRIPTION_MAX),
        )?;
        text(xml, "g:link", &item.link)?;
        text(xml, "g:image_link", &item.image_link)?;
        for link in item
            .additional_image_links
            .iter()
            .take(ADDITIONAL_IMAGES_MAX)
        {
            text(xml, "g:additional_image_link", link)?;
        }
        text(xml, "g:availability", item.availability)?;
        text(xml, "g:price", &item.price)?;
        if let Some(brand) = &item.brand {
            text(xml, "g:brand", brand)?;
        }
        if let Some(gtin) = &item.gtin {
            text(xml, "g:gtin", gtin)?;
        }
        if let Some(mpn) = &item.mpn {
            text(xml, "g:mpn", mpn)?;
        }
        text(xml, "g:condition", "new")?;
        xml.write_event(Event::End(BytesEnd::new("item")))?;
        self.items += 1;
        Ok(())
    }

    pub fn finish(mut self) -> std::io::Result<W> {
        self.xml.write_event(Event::End(BytesEnd::new("channel")))?;
        self.xml.write_event(Event::End(BytesEnd::new("rss")))?;
        Ok(self.xml.into_inner())
    }
}

fn text<W: Write>(xml: &mut Writer<W>, name: &str, value: &str) -> std::io::Result<()> {
    xml.write_event(Event::Start(BytesStart::new(name)))?;
    xml.write_event(Event::Text(BytesText::new(&clean(value))))?;
    xml.write_event(Event::End(BytesEnd::new(name)))?;
    Ok(())
}

/// XML 1.0 cannot carry most control characters, escaped or not.
fn clean(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

fn cut(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

/// Reads a feed back: each item's fields in order. Fails on a malformed document or an
/// unknown entity.
pub fn parse_items(xml: &str) -> Result<Vec<Vec<(String, String)>>, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut path: Vec<String> = Vec::new();
    let mut items: Vec<Vec<(String, String)>> = Vec::new();
    let mut text = String::new();
    loop {
        match reader.read_event().map_err(|e| e.to_string())? {
            Event::Start(e) => {
                let name = e.name().0.to_string();
                if name == "item" {
                    items.push(Vec::new());
                }
                path.push(name);
                text.clear();
            }
            Event::Text(t) => text.push_str(&t.into_inner()),
            Event::GeneralRef(r) => match r.resolve_char_ref().map_err(|e| e.to_string())? {
                Some(c) => text.push(c),
                None => text.push_str(match &*r.into_inner() {
                    "amp" => "&",
                    "lt" => "<",
                    "gt" => ">",
                    "quot" => "\"",
                    "apos" => "'",
                    other => return Err(format!("unknown entity &{other};")),
                }),
            },
            Event::End(_) => {
                if path.len() == 4
                    && path[..3] == ["rss", "channel", "item"]
                    && let Some(item) = items.last_mut()
                {
                    item.push((path[3].clone(), std::mem::take(&mut text)));
                }
                path.pop();
                text.clear();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !path.is_empty() {
        return Err("the document ends inside an element".into());
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str) -> FeedItem {
        FeedItem {
            id: id.into(),
            title: "Tee & \"Co\" <b>bold</b> 🧣".into(),
            description: "Soft\u{0007} cotton, 100% < fun".into(),
            link: "https://shop.example/tee.html?a=1&b=2".into(),
            image_link: "https://shop.example/media/catalog/product/t/e/tee.jpg".into(),
            additional_image_links: vec![
                "https://shop.example/media/catalog/product/t/e/back.jpg".into(),
            ],
            availability: "in_stock",
            price: "19.90 EUR".into(),
            brand: Some("Acme".into()),
            gtin: None,
            mpn: Some(id.into()),
        }
    }

    #[test]
    fn the_feed_parses_back_with_escaped_values_and_required_fields() {
        let mut feed = FeedWriter::new(Vec::new(), "Shop & Co", "https://shop.example/").unwrap();
        feed.item(&item("TS-1")).unwrap();
        feed.item(&item("TS-2")).unwrap();
        let text = String::from_utf8(feed.finish().unwrap()).unwrap();
        assert!(text.contains("xmlns:g=\"http://base.google.com/ns/1.0\""));
        let items = parse_items(&text).unwrap();
        assert_eq!(items.len(), 2);
        let get = |name: &str| {
            items[0]
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(
            get("g:title").as_deref(),
            Some("Tee & \"Co\" <b>bold</b> 🧣")
        );
        assert_eq!(
            get("g:description").as_deref(),
            Some("Soft cotton, 100% < fun"),
            "control characters are dropped"
        );
        assert_eq!(
            get("g:link").as_deref(),
            Some("https://shop.example/tee.html?a=1&b=2")
        );
        for required in [
            "g:id",
            "g:title",
            "g:description",
            "g:link",
            "g:image_link",
            "g:availability",
            "g:price",
            "g:condition",
        ] {
            assert!(get(required).is_some(), "{required}");
        }
        assert!(parse_items("<rss><channel><item>").is_err());
    }
}
