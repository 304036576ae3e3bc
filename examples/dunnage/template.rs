//! `inspect -f/--format`: the part of Go's templates that scripts use on
//! inspect objects: literal text, `{{.Field.Sub}}`, `{{.}}` and
//! `{{json .Field}}`. Values print as Go's `fmt` prints them where JSON
//! tells the type: strings bare, numbers and booleans as such, arrays as
//! `[a b]`, objects as maps (`map[k:v]`, keys sorted), null as `<nil>`
//! (Go prints a struct as `{v1 v2}` and a nil slice as `[]`; JSON does not
//! tell those apart: said in the README).

use serde_json::Value;

/// One piece of a template.
#[derive(Debug, PartialEq)]
enum Piece {
    Text(String),
    /// A field path (empty: the object itself), printed as JSON when
    /// `json`; `col` is where the path starts, for error messages.
    Field {
        path: Vec<String>,
        json: bool,
        col: usize,
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

impl Template {
    /// Parse `text`.
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut rest = text;
        let mut at = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let body_start = open + 2;
            let Some(len) = rest[body_start..].find("}}") else {
                return Err(parse_error("unclosed action"));
            };
            let body = &rest[body_start..body_start + len];
            let lead = body.len() - body.trim_start().len();
            let mut col = at + body_start + lead;
            let mut words = body.split_whitespace();
            let mut first = words.next().unwrap_or_default();
            let json = first == "json";
            if json {
                col += body.trim_start()[4..].len() - body.trim_start()[4..].trim_start().len() + 4;
                first = words.next().unwrap_or_default();
            }
            if words.next().is_some() || !first.starts_with('.') {
                return Err(parse_error(&format!(
                    "function {:?} not defined",
                    first.split('.').next().unwrap_or(first)
                )));
            }
            let path: Vec<String> = first
                .split('.')
                .skip(1)
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            pieces.push(Piece::Field { path, json, col });
            let end = body_start + len + 2;
            at += end;
            rest = &rest[end..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    /// The template applied to `obj`.
    pub fn render(&self, obj: &Value) -> Result<String, TemplateError> {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Field { path, json, col } => {
                    let mut v = obj;
                    let mut key_col = *col;
                    for (i, k) in path.iter().enumerate() {
                        let next = v.as_object().and_then(|m| m.get(k));
                        let Some(next) = next else {
                            let shown: String =
                                path[..=i].iter().map(|k| format!(".{k}")).collect();
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
                    if *json {
                        let keys: Vec<&str> = path.iter().map(String::as_str).collect();
                        out.push_str(&crate::order::to_json(v, &keys));
                    } else {
                        go_print(v, &mut out);
                    }
                }
            }
        }
        Ok(out)
    }
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
}
