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
/// Where in the template: line (from 1) and byte column, as Go counts.
#[derive(Debug, PartialEq, Clone, Copy)]
struct Pos {
    line: usize,
    col: usize,
}

/// One piece of a template.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    /// A field path (empty: the dot itself), printed as JSON when
    /// `json`; `at` is where the path starts, for error messages.
    Field {
        path: Vec<String>,
        json: bool,
        at: Pos,
    },
    /// `index FIELD KEY`: a map's entry or a list's element; `cmd` is the
    /// command as written and `at` where it starts (Go's error names both).
    Index {
        path: Vec<String>,
        key: Value,
        at: Pos,
        cmd: String,
    },
    /// `range FIELD`: `body` for each element, `otherwise` when none.
    Range {
        path: Vec<String>,
        at: Pos,
        body: Vec<Piece>,
        otherwise: Vec<Piece>,
    },
    /// `if FIELD`.
    If {
        path: Vec<String>,
        at: Pos,
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
    /// For a missing field: where, the path shown, the key.
    missing: Option<(Pos, String, String)>,
}

impl TemplateError {
    /// The message Go gives for a missing field of a struct of `type_name`
    /// (where a map's words are `map has no entry for key`).
    pub fn go_field_error(&self, type_name: &str) -> String {
        match &self.missing {
            Some((at, shown, key)) => format!(
                "failed to execute template: template: :{}:{}: executing \"\" at <{shown}>: can't evaluate field {key} in type {type_name}",
                at.line, at.col
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

fn exec_error(at: Pos, why: &str) -> TemplateError {
    TemplateError {
        msg: format!(
            "template parsing error: template: :{}:{}: executing \"\" at {why}",
            at.line, at.col
        ),
        code: 1,
        missing: None,
    }
}

/// Go's white space in actions and around trim markers.
const SPACE: &[char] = &[' ', '\t', '\r', '\n'];

/// A block being parsed: what opened it and its pieces so far.
struct Open {
    kind: Block,
    path: Vec<String>,
    at: Pos,
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
        return Err(not_defined(word));
    }
    Ok(word
        .split('.')
        .skip(1)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect())
}

fn not_defined(word: &str) -> TemplateError {
    parse_error(&format!(
        "function {:?} not defined",
        word.split('.').next().unwrap_or(word)
    ))
}

/// A Go string constant (`"..."` with `\n`, `\t`, `\\`, `\"`), if `word`
/// is exactly one.
fn string_constant(word: &str) -> Option<String> {
    let inner = word.strip_prefix('"')?.strip_suffix('"')?;
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

/// The words of an action with their byte offsets, a quoted string being
/// one word.
fn words(body: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        if quoted {
            match (escaped, c) {
                (false, '\\') => escaped = true,
                (false, '"') => quoted = false,
                _ => escaped = false,
            }
            continue;
        }
        if SPACE.contains(&c) {
            if let Some(s) = start.take() {
                out.push((s, &body[s..i]));
            }
        } else {
            start.get_or_insert(i);
            quoted = c == '"';
        }
    }
    if let Some(s) = start {
        out.push((s, &body[s..]));
    }
    out
}

/// The end of the action that starts at `from` (the index of its `}}`),
/// skipping a `}}` inside a quoted string.
fn action_end(text: &str, from: usize) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    let bytes = text.as_bytes();
    let mut i = from;
    while i < bytes.len() {
        let b = bytes[i];
        if quoted {
            match (escaped, b) {
                (false, b'\\') => escaped = true,
                (false, b'"') => quoted = false,
                _ => escaped = false,
            }
        } else if b == b'"' {
            quoted = true;
        } else if text[i..].starts_with("}}") {
            return Some(i);
        }
        i += 1;
    }
    None
}

impl Template {
    /// Parse `text`.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut done: Vec<Piece> = Vec::new();
        let mut open: Vec<Open> = Vec::new();
        let pos = |offset: usize| -> Pos {
            let before = &text[..offset];
            Pos {
                line: 1 + before.matches('\n').count(),
                col: offset - before.rfind('\n').map_or(0, |n| n + 1),
            }
        };
        let push = |open: &mut Vec<Open>, done: &mut Vec<Piece>, p: Piece| match open.last_mut() {
            Some(b) => b.otherwise.as_mut().unwrap_or(&mut b.first).push(p),
            None => done.push(p),
        };
        let mut at = 0;
        let mut trim_next = false;
        while let Some(found) = text[at..].find("{{") {
            let start = at + found;
            let body_start = start + 2;
            let Some(body_end) = action_end(text, body_start) else {
                return Err(parse_error("unclosed action"));
            };
            let mut body = &text[body_start..body_end];
            let mut body_at = body_start;
            // Go's trim markers, `{{- ` and ` -}}` (any of Go's white
            // space after or before the dash), eat the white space before
            // and after the action.
            let mut before = &text[at..start];
            if trim_next {
                before = before.trim_start_matches(SPACE);
            }
            if body.len() > 1 && body.starts_with('-') && body[1..].starts_with(SPACE) {
                before = before.trim_end_matches(SPACE);
                body = &body[1..];
                body_at += 1;
            }
            trim_next = false;
            if body.len() > 1 && body.ends_with('-') && body[..body.len() - 1].ends_with(SPACE) {
                trim_next = true;
                body = &body[..body.len() - 1];
            }
            if !before.is_empty() {
                push(&mut open, &mut done, Piece::Text(before.to_string()));
            }
            let words = words(body);
            let word_at = |n: usize| pos(body_at + words[n].0);
            let ws: Vec<&str> = words.iter().map(|(_, w)| *w).collect();
            match ws.as_slice() {
                [] => return Err(parse_error("missing value for command")),
                [w] if w.starts_with('"') => {
                    let t = string_constant(w).ok_or_else(|| parse_error("bad string constant"))?;
                    push(&mut open, &mut done, Piece::Text(t));
                }
                ["end"] => {
                    let Some(b) = open.pop() else {
                        return Err(parse_error("unexpected {{end}}"));
                    };
                    let (first, otherwise) = (b.first, b.otherwise.unwrap_or_default());
                    let piece = match b.kind {
                        Block::Range => Piece::Range {
                            path: b.path,
                            at: b.at,
                            body: first,
                            otherwise,
                        },
                        Block::If => Piece::If {
                            path: b.path,
                            at: b.at,
                            then: first,
                            otherwise,
                        },
                    };
                    push(&mut open, &mut done, piece);
                }
                ["else"] => match open.last_mut() {
                    Some(b) if b.otherwise.is_none() => b.otherwise = Some(Vec::new()),
                    Some(_) => return Err(parse_error("expected end; found {{else}}")),
                    None => return Err(parse_error("unexpected {{else}}")),
                },
                [kw @ ("range" | "if"), field] if field.starts_with('.') => open.push(Open {
                    kind: if *kw == "range" {
                        Block::Range
                    } else {
                        Block::If
                    },
                    path: field_path(field)?,
                    at: word_at(1),
                    first: Vec::new(),
                    otherwise: None,
                }),
                ["index", field, key] if field.starts_with('.') => {
                    let key = match string_constant(key) {
                        Some(k) => Value::from(k),
                        None => match key.parse::<u64>() {
                            Ok(n) => Value::from(n),
                            Err(_) => return Err(not_defined(key)),
                        },
                    };
                    let piece = Piece::Index {
                        path: field_path(field)?,
                        key,
                        at: word_at(0),
                        cmd: body.trim_matches(SPACE).to_string(),
                    };
                    push(&mut open, &mut done, piece);
                }
                ["json", field] => {
                    let piece = Piece::Field {
                        path: field_path(field)?,
                        json: true,
                        at: word_at(1),
                    };
                    push(&mut open, &mut done, piece);
                }
                [field] => {
                    let piece = Piece::Field {
                        path: field_path(field)?,
                        json: false,
                        at: word_at(0),
                    };
                    push(&mut open, &mut done, piece);
                }
                [
                    first @ ("range" | "if" | "else" | "with" | "define" | "template" | "block"),
                    ..,
                ] => {
                    return Err(parse_error(&format!(
                        "{{{{{first} ...}}}} in this form is not supported here (fields, json, index, range, if)"
                    )));
                }
                [first, ..] => return Err(not_defined(first)),
            }
            at = body_end + 2;
        }
        let mut rest = &text[at..];
        if trim_next {
            rest = rest.trim_start_matches(SPACE);
        }
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
        render(&self.0, obj, &[], &mut out)?;
        Ok(out)
    }
}

/// The value at `path` below `dot`: `Ok(None)` for a missing key where
/// `lenient` (docker's typed structs have every field: a nil one is false
/// in `if` and empty in `range`), else Go's missing-key error.
fn lookup<'a>(
    dot: &'a Value,
    path: &[String],
    at: Pos,
    lenient: bool,
) -> Result<Option<&'a Value>, TemplateError> {
    let mut v = dot;
    let mut key_col = at.col;
    for (i, k) in path.iter().enumerate() {
        let Some(next) = v.as_object().and_then(|m| m.get(k)) else {
            if lenient && v.is_object() {
                return Ok(None);
            }
            let shown: String = path[..=i].iter().map(|k| format!(".{k}")).collect();
            let key_at = Pos {
                line: at.line,
                col: key_col,
            };
            return Err(TemplateError {
                msg: format!(
                    "template parsing error: template: :{}:{key_col}: executing \"\" at <{shown}>: map has no entry for key \"{k}\"",
                    at.line
                ),
                code: 1,
                missing: Some((key_at, shown, k.clone())),
            });
        };
        key_col += k.len() + 1;
        v = next;
    }
    Ok(Some(v))
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

/// Render `pieces` with `dot`, found at `base` in the top-level object
/// (for docker's key order in `json`).
fn render(
    pieces: &[Piece],
    dot: &Value,
    base: &[String],
    out: &mut String,
) -> Result<(), TemplateError> {
    let joined = |path: &[String]| -> Vec<String> { base.iter().chain(path).cloned().collect() };
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Field { path, json, at } => {
                let v = lookup(dot, path, *at, false)?.unwrap_or(&Value::Null);
                if *json {
                    let keys = joined(path);
                    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
                    out.push_str(&crate::order::to_json(v, &keys));
                } else {
                    go_print(v, out);
                }
            }
            Piece::Index { path, key, at, cmd } => {
                let v = lookup(dot, path, *at, false)?.unwrap_or(&Value::Null);
                let item = match (v, key) {
                    (Value::Object(m), Value::String(k)) => m.get(k),
                    (Value::Array(a), Value::Number(n)) => {
                        let i = n.as_u64().unwrap_or(u64::MAX);
                        let item = usize::try_from(i).ok().and_then(|i| a.get(i));
                        if item.is_none() {
                            return Err(exec_error(
                                *at,
                                &format!("<{cmd}>: error calling index: index out of range: {i}"),
                            ));
                        }
                        item
                    }
                    (Value::Null, _) => None,
                    (other, _) => {
                        let kind = match other {
                            Value::String(_) => "string",
                            Value::Number(_) => "int",
                            Value::Bool(_) => "bool",
                            _ => "interface {}",
                        };
                        return Err(exec_error(
                            *at,
                            &format!(
                                "<{cmd}>: error calling index: can't index item of type {kind}"
                            ),
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
                at,
                body,
                otherwise,
            } => {
                let here = joined(path);
                let items: Vec<(&Value, Vec<String>)> = match lookup(dot, path, *at, true)? {
                    Some(Value::Array(a)) => a.iter().map(|x| (x, here.clone())).collect(),
                    Some(Value::Object(m)) => {
                        let mut keys: Vec<&String> = m.keys().collect();
                        keys.sort();
                        keys.into_iter()
                            .filter_map(|k| {
                                let mut p = here.clone();
                                p.push(k.clone());
                                m.get(k).map(|x| (x, p))
                            })
                            .collect()
                    }
                    None | Some(Value::Null) => Vec::new(),
                    Some(other) => {
                        let mut shown = String::new();
                        go_print(other, &mut shown);
                        let field: String = path.iter().map(|k| format!(".{k}")).collect();
                        return Err(exec_error(
                            *at,
                            &format!("<{field}>: range can't iterate over {shown}"),
                        ));
                    }
                };
                if items.is_empty() {
                    render(otherwise, dot, base, out)?;
                }
                for (item, p) in items {
                    render(body, item, &p, out)?;
                }
            }
            Piece::If {
                path,
                at,
                then,
                otherwise,
            } => {
                let yes = lookup(dot, path, *at, true)?.is_some_and(truth);
                render(if yes { then } else { otherwise }, dot, base, out)?;
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
            (
                "{{if .A}}{{else}}{{else}}{{end}}",
                "expected end; found {{else}}",
            ),
            ("{{index .Args x}}", "function \"x\" not defined"),
            (
                "{{range $i, $e := .A}}{{end}}",
                "is not supported here (fields, json, index, range, if)",
            ),
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
        assert!(run_err("{{index .Args 5}}").msg.ends_with(
            ":1:2: executing \"\" at <index .Args 5>: error calling index: index out of range: 5"
        ));
        assert!(run_err(".\n {{.Nope}}").msg.contains(":2:3: executing"));
        // A field docker's struct has but our JSON leaves out: false in
        // if, empty in range (as a nil one in docker).
        assert_eq!(r("{{range .Nope}}x{{else}}none{{end}}"), "none");
        assert_eq!(r("{{if .State.Health}}x{{else}}no{{end}}"), "no");
        // Quoted words with spaces, a }} inside quotes, Go's white space
        // around trim markers.
        assert_eq!(r(r#"{{index .Config.Labels "a b"}}{{"}}"}}"#), "}}");
        assert_eq!(r("a\n{{-\t.Name\n-}}\n b"), "a/nb");
    }
}
