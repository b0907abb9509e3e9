//! The few pieces of HTML the generated pages share (a run's `index.html`,
//! [`super::run_page`], and a study's, [`crate::study::page`]): escaping, one self-contained
//! document shell with inline CSS (no scripts, fonts or other outside resources, so a page
//! reads the same offline), relative links, and the Markdown subset the trainer writes
//! (headings, paragraphs, pipe tables with `code` and **bold**) as HTML — so a table that
//! exists as Markdown (`results.md`, the study's headline) is shown from the same text.

use std::fmt::Write as _;
use std::path::Path;

/// `s` with `&`, `<`, `>`, `"` and `'` escaped: safe as element text and in quoted attributes.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A relative link's `href`/`src`: each path segment percent-encoded where a URL needs it
/// (spaces, `#`, `?`, `%`, non-ASCII), then HTML-escaped.
pub fn href(relative: &str) -> String {
    let mut out = String::with_capacity(relative.len());
    for b in relative.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            b => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

/// `target` as a path relative to the folder `from` (both made absolute first), with `/`;
/// `.` when they are the same.
pub fn relative_path(target: &Path, from: &Path) -> String {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (t, f) = (abs(target), abs(from));
    let tc: Vec<_> = t.components().collect();
    let fc: Vec<_> = f.components().collect();
    let common = tc.iter().zip(&fc).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = std::iter::repeat_n("..".to_string(), fc.len() - common).collect();
    parts.extend(
        tc[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

const STYLE: &str = "\
html{background:#f6f7f9}body{font:15px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#1d2330;\
background:#f6f7f9;margin:0}\
main{max-width:1180px;margin:0 auto;padding:18px 28px 48px}\
header.page{background:#1f3b6e;color:#fff;padding:18px 28px}\
header.page h1{margin:0 auto;max-width:1180px;font-size:24px}\
header.page p{margin:4px auto 0;max-width:1180px;opacity:.85}\
nav{margin:0 0 8px;font-size:14px}nav a{margin-right:14px}\
h2{font-size:19px;border-bottom:2px solid #d5dbe5;padding-bottom:3px;margin:30px 0 12px}\
h3{font-size:16px;margin:20px 0 8px}\
a{color:#1f56b3}code,pre{font:13px/1.4 ui-monospace,'DejaVu Sans Mono',monospace}\
pre{background:#fff;border:1px solid #d5dbe5;padding:10px 12px;overflow:auto;max-height:460px}\
table{border-collapse:collapse;background:#fff;margin:6px 0 10px}\
th,td{border:1px solid #d5dbe5;padding:4px 9px;text-align:left;vertical-align:top}\
th{background:#eef1f6}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}\
.note{color:#5a6375;font-size:13.5px}.warn{color:#a33}\
figure{margin:0 0 14px;background:#fff;border:1px solid #d5dbe5;padding:8px;display:inline-block;\
vertical-align:top}\
figure img{display:block;max-width:100%;height:auto}\
figcaption{font-size:13.5px;color:#3b4354;margin-top:6px;max-width:100%}\
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:12px}\
.grid figure{display:block}.grid figure.wide{grid-column:1/-1;justify-self:start;max-width:760px}\
.gallery{display:flex;flex-wrap:wrap;gap:10px}.gallery figure{width:150px}\
.side{display:flex;gap:18px;align-items:flex-start}.side h3{margin-top:0}\
dl.kv{display:grid;grid-template-columns:max-content 1fr;gap:3px 16px;margin:0}\
dl.kv dt{color:#5a6375}dl.kv dd{margin:0}\
.badge{display:inline-block;padding:1px 8px;border-radius:9px;font-size:13px;background:#e3e8f0}\
.badge.ok{background:#d8efd9}.badge.run{background:#fdf0c8}.badge.bad{background:#f6d5d5}\
footer{margin-top:36px;font-size:13px;color:#5a6375}";

/// A complete HTML document: `title` (plain text, escaped here) in the page header with the
/// `subtitle` line (HTML) under it, then `body` (HTML).
pub fn document(title: &str, subtitle: &str, body: &str) -> String {
    let t = escape(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"dicyc trainer\">\n<title>{t}</title>\n\
         <style>{STYLE}</style>\n</head>\n<body>\n<header class=\"page\"><h1>{t}</h1><p>{subtitle}</p></header>\n\
         <main>\n{body}</main>\n</body>\n</html>\n"
    )
}

/// Inline Markdown (`code`, **bold**; a `[text](link)` keeps its text only, since its link
/// was written relative to another page) as escaped HTML.
fn inline(md: &str) -> String {
    let mut out = String::new();
    let mut rest = md;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('`') {
            if let Some(end) = after.find('`') {
                let _ = write!(out, "<code>{}</code>", escape(&after[..end]));
                rest = &after[end + 1..];
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix("**") {
            if let Some(end) = after.find("**") {
                let _ = write!(out, "<strong>{}</strong>", inline(&after[..end]));
                rest = &after[end + 2..];
                continue;
            }
        }
        if let Some(after) = rest.strip_prefix('[') {
            if let Some((text, tail)) = after.split_once("](") {
                if let Some(end) = tail.find(')') {
                    out.push_str(&inline(text));
                    rest = &tail[end + 1..];
                    continue;
                }
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push_str(&escape(&c.to_string()));
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn cells(row: &str) -> Vec<&str> {
    let row = row.trim();
    let row = row.strip_prefix('|').unwrap_or(row);
    let row = row.strip_suffix('|').unwrap_or(row);
    row.split('|').map(str::trim).collect()
}

fn table(lines: &[&str], out: &mut String) {
    let head = cells(lines[0]);
    let right: Vec<bool> = lines
        .get(1)
        .map(|sep| cells(sep).iter().map(|c| c.ends_with(':')).collect())
        .unwrap_or_default();
    let class = |i: usize| {
        if right.get(i).copied().unwrap_or(false) {
            " class=\"num\""
        } else {
            ""
        }
    };
    out.push_str("<table>\n<thead><tr>");
    for (i, c) in head.iter().enumerate() {
        let _ = write!(out, "<th{}>{}</th>", class(i), inline(c));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in lines.iter().skip(2) {
        out.push_str("<tr>");
        for (i, c) in cells(row).iter().enumerate() {
            let _ = write!(out, "<td{}>{}</td>", class(i), inline(c));
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n");
}

/// The Markdown the trainer writes — `#` headings (shifted down by `shift` levels), pipe
/// tables (a `---:` column is right-aligned) and paragraphs — as HTML. Anything else is
/// shown as paragraph text, escaped.
pub fn markdown(md: &str, shift: usize) -> String {
    let mut out = String::new();
    let lines: Vec<&str> = md.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end();
        if line.trim().is_empty() {
            i += 1;
        } else if line.starts_with('|') {
            let start = i;
            while i < lines.len() && lines[i].trim_start().starts_with('|') {
                i += 1;
            }
            table(&lines[start..i], &mut out);
        } else if let Some(level) = (1..=6).find(|&n| {
            line.strip_prefix(&"#".repeat(n))
                .is_some_and(|r| r.starts_with(' '))
        }) {
            let n = (level + shift).min(6);
            let _ = writeln!(out, "<h{n}>{}</h{n}>", inline(line[level..].trim()));
            i += 1;
        } else {
            let mut para = Vec::new();
            while i < lines.len() {
                let l = lines[i].trim();
                if l.is_empty() || l.starts_with('|') || l.starts_with('#') {
                    break;
                }
                para.push(l);
                i += 1;
            }
            let _ = writeln!(out, "<p class=\"note\">{}</p>", inline(&para.join(" ")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert_eq!(href("samples/epoch 1#?.png"), "samples/epoch%201%23%3F.png");
    }

    #[test]
    fn markdown_tables_become_html_tables() {
        let md = "### Title <x>\n\n| a | `b` |\n|---|---:|\n| 1 <s> | **2** |\n\nnote [see](x.md) & more\n";
        let html = markdown(md, 0);
        assert!(html.contains("<h3>Title &lt;x&gt;</h3>"), "{html}");
        assert!(
            html.contains("<th class=\"num\"><code>b</code></th>"),
            "{html}"
        );
        assert!(html.contains("<td>1 &lt;s&gt;</td><td class=\"num\"><strong>2</strong></td>"));
        assert!(
            html.contains("<p class=\"note\">note see &amp; more</p>"),
            "{html}"
        );
    }

    #[test]
    fn relative_paths_between_folders() {
        assert_eq!(
            relative_path(Path::new("/a/b/c"), Path::new("/a/d")),
            "../b/c"
        );
        assert_eq!(relative_path(Path::new("/a"), Path::new("/a")), ".");
    }
}
