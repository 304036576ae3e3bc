//! `inspect -f/--format`: the part of Go's templates that scripts use on
//! inspect objects: literal text, `{{.Field.Sub}}`, `{{.}}`,
//! `{{json .Field}}`, `{{index .Map "key"}}` (or `{{index .List 0}}`),
//! string constants (`{{"\n"}}`), `{{range .X}}...{{else}}...{{end}}`
//! (over a list, or a map's values in key order; `.` is the element) and
//! `{{if .X}}...{{else}}...{{end}}` (Go's truth: not false, 0, nil or
//! empty), and the trim markers `{{- ` and ` -}}`. Values print as Go's `fmt` prints them where JSON tells the
//! type: strings bare, numbers and booleans as such, arrays as `[a b]`,
//! objects as maps (`map[k:v]`, keys sorted), null as `<nil>` (Go prints a
//! struct as `{v1 v2}` and a nil slice as `[]`; JSON does not tell those
//! apart: said in the README). Pipelines, variables and the other
//! functions are refused as Go refuses an unknown function.

use serde_json::Value;

/// One piece of a template.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    /// A field path (empty: the dot itself), printed as JSON when
    /// `json`; `col` is where the path starts, for error messages.
    Field {
        path: Vec<String>,
        json: bool,
        col: usize,
    },
    /// `index FIELD KEY`: a map's entry or a list's element.
    Index {
        path: Vec<String>,
        key: Value,
        col: usize,
    },
    /// `range FIELD`: `body` for each element, `otherwise` when none.
    Range {
        path: Vec<String>,
        col: usize,
        body: Vec<Piece>,
        otherwise: Vec<Piece>,
    },
    /// `if FIELD`.
    If {
        path: Vec<String>,
        col: usize,
        then: Vec<Piece>,
        otherwise: Vec<Piece>,
    },
}

/// A parsed template.
#[derive(Debug)]
pub struct Template(Vec<Piece>);

/// A template error in Go's words (`template parsing error: ...`).
#[derive(Debug)]
pub struct TemplateError {
    /// The message.
    pub msg: String,
    /// docker's exit code for it (64 for a template that does not parse,
    /// 1 for a field that is missing).
    pub code: u8,
    /// For a missing field: where (column), the path shown, the key.
    missing: Option<(usize, String, String)>,
}

impl TemplateError {
    /// The message Go gives for a missing field of a struct of `type_name`
    /// (where a map's words are `map has no entry for key`).
    pub fn go_field_error(&self, type_name: &str) -> String {
        match &self.missing {
            Some((col, shown, key)) => format!(
                "failed to execute template: template: :1:{col}: executing \"\" at <{shown}>: can't evaluate field {key} in type {type_name}"
            ),
            None => self.msg.clone(),
        }
    }
}

fn parse_error(why: &str) -> TemplateError {
    TemplateError {
        msg: format!("template parsing error: template: :1: {why}"),
        code: 64,
        missing: None,
    }
}

fn exec_error(col: usize, why: &str) -> TemplateError {
    TemplateError {
        msg: format!("template parsing error: template: :1:{col}: executing \"\" at {why}"),
        code: 1,
        missing: None,
    }
}

/// A block being parsed: what opened it and its pieces so far.
struct Open {
    kind: Block,
    path: Vec<String>,
    col: usize,
    first: Vec<Piece>,
    /// After `{{else}}`: the pieces before it are `first`.
    otherwise: Option<Vec<Piece>>,
}

#[derive(Clone, Copy, PartialEq)]
enum Block {
    Range,
    If,
}

/// A field path `.A.B` (`.` alone: empty), or a parse error.
fn field_path(word: &str) -> Result<Vec<String>, TemplateError> {
    if !word.starts_with('.') {
        return Err(parse_error(&format!(
            "function {:?} not defined",
            word.split('.').next().unwrap_or(word)
        )));
    }
    Ok(word
        .split('.')
        .skip(1)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect())
}

/// A Go string constant (`"..."` with `\n`, `\t`, `\\`, `\"`), if `body`
/// is exactly one.
fn string_constant(body: &str) -> Option<String> {
    let inner = body.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next()? {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                '\\' => out.push('\\'),
                '"' => out.push('"'),
                _ => return None,
            },
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

impl Template {
    /// Parse `text`.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut done: Vec<Piece> = Vec::new();
        let mut open: Vec<Open> = Vec::new();
        let mut rest = text;
        let mut at = 0;
        let mut trim_next = false;
        let push = |open: &mut Vec<Open>, done: &mut Vec<Piece>, p: Piece| match open.last_mut() {
            Some(b) => b.otherwise.as_mut().unwrap_or(&mut b.first).push(p),
            None => done.push(p),
        };
        while let Some(start) = rest.find("{{") {
            let body_start = start + 2;
            let Some(len) = rest[body_start..].find("}}") else {
                return Err(parse_error("unclosed action"));
            };
            let mut body = &rest[body_start..body_start + len];
            // Go's trim markers: `{{- ` and ` -}}` eat the white space
            // before and after the action.
            let mut text = &rest[..start];
            if trim_next {
                text = text.trim_start();
            }
            let mut marker = 0;
            if let Some(b) = body.strip_prefix("- ") {
                text = text.trim_end();
                body = b;
                marker = 2;
            }
            trim_next = false;
            if let Some(b) = body.strip_suffix(" -") {
                trim_next = true;
                body = b;
            }
            if !text.is_empty() {
                push(&mut open, &mut done, Piece::Text(text.to_string()));
            }
            let lead = marker + body.len() - body.trim_start().len();
            let col = at + body_start + lead;
            let trimmed = body.trim();
            let words: Vec<&str> = trimmed.split_whitespace().collect();
            // The column of the n-th word (for error messages).
            let word_col = |n: usize| -> usize {
                let w = words[n];
                col + trimmed.find(w).unwrap_or(0)
            };
            if let Some(text) = string_constant(trimmed) {
                push(&mut open, &mut done, Piece::Text(text));
            } else {
                match words.as_slice() {
                    [] => return Err(parse_error("missing value for command")),
                    ["end"] => {
                        let Some(b) = open.pop() else {
                            return Err(parse_error("unexpected {{end}}"));
                        };
                        let (first, otherwise) = (b.first, b.otherwise.unwrap_or_default());
                        let piece = match b.kind {
                            Block::Range => Piece::Range {
                                path: b.path,
                                col: b.col,
                                body: first,
                                otherwise,
                            },
                            Block::If => Piece::If {
                                path: b.path,
                                col: b.col,
                                then: first,
                                otherwise,
                            },
                        };
                        push(&mut open, &mut done, piece);
                    }
                    ["else"] => match open.last_mut() {
                        Some(b) if b.otherwise.is_none() => b.otherwise = Some(Vec::new()),
                        _ => return Err(parse_error("unexpected {{else}}")),
                    },
                    [kw @ ("range" | "if"), field] => open.push(Open {
                        kind: if *kw == "range" {
                            Block::Range
                        } else {
                            Block::If
                        },
                        path: field_path(field)?,
                        col: word_col(1),
                        first: Vec::new(),
                        otherwise: None,
                    }),
                    ["index", field, key] => {
                        let key = match string_constant(key) {
                            Some(k) => Value::from(k),
                            None => match key.parse::<u64>() {
                                Ok(n) => Value::from(n),
                                Err(_) => {
                                    return Err(parse_error(&format!("index: bad key {key}")));
                                }
                            },
                        };
                        let piece = Piece::Index {
                            path: field_path(field)?,
                            key,
                            col: word_col(1),
                        };
                        push(&mut open, &mut done, piece);
                    }
                    ["json", field] => {
                        let piece = Piece::Field {
                            path: field_path(field)?,
                            json: true,
                            col: word_col(1),
                        };
                        push(&mut open, &mut done, piece);
                    }
                    [field] => {
                        let piece = Piece::Field {
                            path: field_path(field)?,
                            json: false,
                            col,
                        };
                        push(&mut open, &mut done, piece);
                    }
                    [first, ..] => {
                        return Err(parse_error(&format!(
                            "function {:?} not defined",
                            first.split('.').next().unwrap_or(first)
                        )));
                    }
                }
            }
            let end = body_start + len + 2;
            at += end;
            rest = &rest[end..];
        }
        let rest = if trim_next { rest.trim_start() } else { rest };
        if !rest.is_empty() {
            push(&mut open, &mut done, Piece::Text(rest.to_string()));
        }
        if !open.is_empty() {
            return Err(parse_error("unexpected EOF"));
        }
        Ok(Template(done))
    }

    /// The template applied to `obj`.
    pub fn render(&self, obj: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        render(&self.0, obj, &mut out)?;
        Ok(out)
    }
}

/// The value at `path` below `dot`, or Go's missing-key error.
fn lookup<'a>(dot: &'a Value, path: &[String], col: usize) -> Result<&'a Value, TemplateError> {
    let mut v = dot;
    let mut key_col = col;
    for (i, k) in path.iter().enumerate() {
        let Some(next) = v.as_object().and_then(|m| m.get(k)) else {
            let shown: String = path[..=i].iter().map(|k| format!(".{k}")).collect();
            return Err(TemplateError {
                msg: format!(
                    "template parsing error: template: :1:{key_col}: executing \"\" at <{shown}>: map has no entry for key \"{k}\""
                ),
                code: 1,
                missing: Some((key_col, shown, k.clone())),
            });
        };
        key_col += k.len() + 1;
        v = next;
    }
    Ok(v)
}

/// Go's truth: false, 0, nil and empty strings, lists and maps are false.
fn truth(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn render(pieces: &[Piece], dot: &Value, out: &mut String) -> Result<(), TemplateError> {
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Field { path, json, col } => {
                let v = lookup(dot, path, *col)?;
                if *json {
                    let keys: Vec<&str> = path.iter().map(String::as_str).collect();
                    out.push_str(&crate::order::to_json(v, &keys));
                } else {
                    go_print(v, out);
                }
            }
            Piece::Index { path, key, col } => {
                let v = lookup(dot, path, *col)?;
                let item = match (v, key) {
                    (Value::Object(m), Value::String(k)) => m.get(k),
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n.as_u64().unwrap_or(u64::MAX);
                        let item = usize::try_from(i).ok().and_then(|i| a.get(i));
                        if item.is_none() {
                            return Err(exec_error(
                                *col,
                                &format!("<index>: error calling index: index out of range: {i}"),
                            ));
                        }
                        item
                    }
                    (Value::Null, _) => None,
                    _ => {
                        return Err(exec_error(
                            *col,
                            "<index>: error calling index: cannot index that value",
                        ));
                    }
                };
                // A missing map key gives the element type's zero value,
                // which JSON does not tell: nothing is printed.
                if let Some(item) = item {
                    go_print(item, out);
                }
            }
            Piece::Range {
                path,
                col,
                body,
                otherwise,
            } => {
                let v = lookup(dot, path, *col)?;
                let items: Vec<&Value> = match v {
                    Value::Array(a) => a.iter().collect(),
                    Value::Object(m) => {
                        let mut keys: Vec<&String> = m.keys().collect();
                        keys.sort();
                        keys.into_iter().filter_map(|k| m.get(k)).collect()
                    }
                    Value::Null => Vec::new(),
                    other => {
                        let mut shown = String::new();
                        go_print(other, &mut shown);
                        return Err(exec_error(
                            *col,
                            &format!("<.{}>: range can't iterate over {shown}", path.join(".")),
                        ));
                    }
                };
                if items.is_empty() {
                    render(otherwise, dot, out)?;
                }
                for item in items {
                    render(body, item, out)?;
                }
            }
            Piece::If {
                path,
                col,
                then,
                otherwise,
            } => {
                let v = lookup(dot, path, *col)?;
                render(if truth(v) { then } else { otherwise }, dot, out)?;
            }
        }
    }
    Ok(())
}

/// `v` as Go's `fmt.Print` prints the value it came from.
fn go_print(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Array(items) => {
            out.push('[');
            for (i, x) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                go_print(x, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push_str("map[");
            for (i, (k, x)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                go_print(x, out);
            }
            out.push(']');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_text_and_json() {
        let obj = serde_json::json!({
            "Name": "/x",
            "State": {"Pid": 0, "ExitCode": 3, "Running": false, "Status": "exited"},
            "Args": ["-c", "exit 3"],
            "Labels": {"b": "2", "a": "1"},
            "CapAdd": null,
        });
        let r = |t: &str| Template::parse(t).unwrap().render(&obj).unwrap();
        assert_eq!(r("{{.State.ExitCode}} {{.Name}}"), "3 /x");
        assert_eq!(r("{{ .State.Running }}"), "false");
        assert_eq!(r("{{json .State.Status}}"), "\"exited\"");
        assert_eq!(r("{{.Args}}"), "[-c exit 3]");
        assert_eq!(r("{{.Labels}}"), "map[a:1 b:2]");
        assert_eq!(r("{{json .Args}}"), r#"["-c","exit 3"]"#);
        assert_eq!(r("{{.CapAdd}}"), "<nil>");
        assert_eq!(r("pid={{.State.Pid}}!"), "pid=0!");
        let e = Template::parse("{{.State.Bogus}}")
            .unwrap()
            .render(&obj)
            .unwrap_err();
        assert_eq!(
            e.msg,
            "template parsing error: template: :1:8: executing \"\" at <.State.Bogus>: map has no entry for key \"Bogus\""
        );
        assert_eq!(e.code, 1);
        let e = Template::parse("{{.NoSuch}}")
            .unwrap()
            .render(&obj)
            .unwrap_err();
        assert!(e.msg.contains(":1:2: executing"), "{}", e.msg);
        let e = Template::parse("{{.State").unwrap_err();
        assert_eq!(
            e.msg,
            "template parsing error: template: :1: unclosed action"
        );
        assert_eq!(e.code, 64);
        assert!(Template::parse("{{bogus .X}}").is_err());
        assert!(Template::parse("{{}}").is_err());
    }

    #[test]
    fn range_if_index_and_constants() {
        let obj = serde_json::json!({
            "NetworkSettings": {"Networks": {
                "web": {"IPAddress": "10.1.0.2"},
                "bridge": {"IPAddress": "172.17.0.2"},
            }},
            "Mounts": [{"Source": "/a"}, {"Source": "/b"}],
            "Config": {"Labels": {"k": "v"}, "Tty": false, "Env": []},
            "Args": ["x", "y"],
            "Name": "/n",
        });
        let r = |t: &str| Template::parse(t).unwrap().render(&obj).unwrap();
        // docker's idiom for a container's addresses: a map's values in
        // key order.
        assert_eq!(
            r("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"),
            "172.17.0.2 10.1.0.2 "
        );
        assert_eq!(
            r(r#"{{range .Mounts}}{{.Source}}{{"\n"}}{{end}}"#),
            "/a\n/b\n"
        );
        assert_eq!(r("{{range .Config.Env}}x{{else}}none{{end}}"), "none");
        assert_eq!(r("{{if .Config.Tty}}tty{{else}}no tty{{end}}"), "no tty");
        assert_eq!(r("{{if .Args}}{{.Name}}{{end}}"), "/n");
        assert_eq!(
            r(r#"{{index .Config.Labels "k"}}|{{index .Config.Labels "z"}}"#),
            "v|"
        );
        assert_eq!(r("{{index .Args 1}}"), "y");
        assert_eq!(r("{{range .Args}}\n  {{- . -}}\n,{{end}}"), "x,y,");
        assert_eq!(
            r(
                r#"{{range .NetworkSettings.Networks}}{{if .IPAddress}}{{json .IPAddress}}{{end}}{{end}}"#
            ),
            r#""172.17.0.2""10.1.0.2""#
        );
        for (bad, why) in [
            ("{{range .Args}}x", "unexpected EOF"),
            ("x{{end}}", "unexpected {{end}}"),
            ("{{else}}", "unexpected {{else}}"),
            ("{{if .A}}{{else}}{{else}}{{end}}", "unexpected {{else}}"),
            ("{{index .Args x}}", "index: bad key x"),
        ] {
            let e = Template::parse(bad).unwrap_err();
            assert!(e.msg.ends_with(why), "{bad}: {}", e.msg);
            assert_eq!(e.code, 64);
        }
        let run_err = |t: &str| Template::parse(t).unwrap().render(&obj).unwrap_err();
        assert!(
            run_err("{{range .Name}}{{end}}")
                .msg
                .contains("range can't iterate over /n")
        );
        assert!(
            run_err("{{index .Args 5}}")
                .msg
                .contains("index out of range: 5")
        );
        assert!(
            run_err("{{range .Nope}}{{end}}")
                .msg
                .contains("no entry for key \"Nope\"")
        );
    }
}
