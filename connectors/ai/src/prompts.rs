//! Versioned prompt templates: one file per task, `<task>.v<N>.txt`, plus `system.v<N>.txt`.
//!
//! The built-in set is the project's `config/prompts/` directory, compiled in; an operator
//! can point at a directory of their own, whose files replace the built-in template of the
//! same name (the highest version in that directory wins). The ids of the templates used
//! (`system.v1,meta_title.v1`) are the prompt version recorded on every proposal.
//! Placeholders: `{language}`, `{language_name}`, `{max_chars}`.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::AiError;
use crate::request::{Request, Task};

const BUILTIN: &[(&str, &str)] = &[
    (
        "system.v1.txt",
        include_str!("../../../config/prompts/system.v1.txt"),
    ),
    (
        "description.v1.txt",
        include_str!("../../../config/prompts/description.v1.txt"),
    ),
    (
        "short_description.v1.txt",
        include_str!("../../../config/prompts/short_description.v1.txt"),
    ),
    (
        "meta_title.v1.txt",
        include_str!("../../../config/prompts/meta_title.v1.txt"),
    ),
    (
        "meta_description.v1.txt",
        include_str!("../../../config/prompts/meta_description.v1.txt"),
    ),
    (
        "meta_keyword.v1.txt",
        include_str!("../../../config/prompts/meta_keyword.v1.txt"),
    ),
    (
        "alt_text.v1.txt",
        include_str!("../../../config/prompts/alt_text.v1.txt"),
    ),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// `meta_title.v1`
    pub id: String,
    version: u32,
    pub text: String,
}

/// The templates in use, by name (`system`, `meta_title`…).
#[derive(Debug, Clone)]
pub struct Prompts {
    templates: BTreeMap<String, Template>,
}

/// A prompt ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub system: String,
    pub user: String,
    /// The template ids used, e.g. `system.v1,meta_title.v1`.
    pub version: String,
}

fn parse_file_name(file: &str) -> Option<(String, u32)> {
    let stem = file.strip_suffix(".txt")?;
    let (name, version) = stem.rsplit_once(".v")?;
    let version: u32 = version.parse().ok()?;
    let known = name == "system" || Task::parse(name).is_some();
    known.then(|| (name.to_string(), version))
}

fn collect(
    files: impl IntoIterator<Item = (String, String)>,
) -> Result<BTreeMap<String, Template>, AiError> {
    let mut templates: BTreeMap<String, Template> = BTreeMap::new();
    for (file, text) in files {
        let Some((name, version)) = parse_file_name(&file) else {
            continue;
        };
        if text.trim().is_empty() {
            return Err(AiError::Config(format!("prompt template {file} is empty")));
        }
        if templates.get(&name).is_none_or(|t| t.version < version) {
            templates.insert(
                name.clone(),
                Template {
                    id: format!("{name}.v{version}"),
                    version,
                    text: text.trim().to_string(),
                },
            );
        }
    }
    Ok(templates)
}

impl Prompts {
    /// The project's templates (`config/prompts/`).
    pub fn builtin() -> Prompts {
        let templates = collect(BUILTIN.iter().map(|(f, t)| (f.to_string(), t.to_string())))
            .expect("built-in prompts are valid");
        Prompts { templates }
    }

    /// The built-in templates with those in `dir` on top. Files not named
    /// `<system|task>.v<N>.txt` are ignored; an unreadable directory is an error.
    pub fn with_overrides_from(mut self, dir: &Path) -> Result<Prompts, AiError> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| AiError::Config(format!("prompt directory {}: {e}", dir.display())))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| AiError::Config(format!("{}: {e}", dir.display())))?;
            let file = entry.file_name().to_string_lossy().to_string();
            if parse_file_name(&file).is_some() {
                let text = std::fs::read_to_string(entry.path())
                    .map_err(|e| AiError::Config(format!("{}: {e}", entry.path().display())))?;
                files.push((file, text));
            }
        }
        self.templates.extend(collect(files)?);
        Ok(self)
    }

    pub fn template(&self, name: &str) -> Option<&Template> {
        self.templates.get(name)
    }

    /// The system and user messages for `request`.
    pub fn render(&self, request: &Request) -> Rendered {
        let language = request.language();
        let language_name = language_name(language);
        let fill = |text: &str, max: usize| {
            text.replace("{language}", language)
                .replace("{language_name}", language_name)
                .replace("{max_chars}", &max.to_string())
        };
        let system = self.templates.get("system").expect("a system template");
        let mut ids = vec![system.id.clone()];
        let mut user = String::from("Write the following fields.\n\n");
        for task in request.tasks() {
            let template = self
                .templates
                .get(task.field())
                .expect("a template for every task");
            ids.push(template.id.clone());
            user.push_str(&fill(&template.text, task.max_chars()));
            user.push_str("\n\n");
        }
        user.push_str("Product facts (JSON):\n");
        user.push_str(&request.facts().to_string());
        user.push_str("\n\nAnswer with only a JSON object with exactly these keys: ");
        user.push_str(
            &request
                .tasks()
                .iter()
                .map(|t| t.field())
                .collect::<Vec<_>>()
                .join(", "),
        );
        user.push('.');
        Rendered {
            system: fill(&system.text, 0),
            user,
            version: ids.join(","),
        }
    }
}

fn language_name(code: &str) -> &'static str {
    match code {
        "fr" => "French",
        "de" => "German",
        "es" => "Spanish",
        "it" => "Italian",
        "nl" => "Dutch",
        "pt" => "Portuguese",
        "pl" => "Polish",
        "sv" => "Swedish",
        "da" => "Danish",
        _ => "English",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::RequestBuilder;

    #[test]
    fn builtin_prompts_cover_every_task_and_record_versions() {
        let prompts = Prompts::builtin();
        for task in Task::ALL {
            assert!(prompts.template(task.field()).is_some(), "{task:?}");
        }
        let request = RequestBuilder::text("de", &[Task::MetaTitle, Task::MetaDescription])
            .name("Rote Tasse")
            .build();
        let rendered = prompts.render(&request);
        assert_eq!(
            rendered.version,
            "system.v1,meta_title.v1,meta_description.v1"
        );
        assert!(rendered.system.contains("German"));
        assert!(rendered.user.contains("at most 60 characters"));
        assert!(rendered.user.contains("at most 160 characters"));
        assert!(rendered.user.contains("Rote Tasse"));
    }

    #[test]
    fn an_operator_directory_overrides_by_name_with_its_highest_version() {
        let dir = std::env::temp_dir().join(format!("ai-prompts-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("meta_title.v2.txt"),
            "meta_title: short, {max_chars} max",
        )
        .unwrap();
        std::fs::write(
            dir.join("meta_title.v3.txt"),
            "meta_title: v3 wins ({max_chars})",
        )
        .unwrap();
        std::fs::write(dir.join("README.md"), "ignored").unwrap();
        let prompts = Prompts::builtin().with_overrides_from(&dir).unwrap();
        assert_eq!(prompts.template("meta_title").unwrap().id, "meta_title.v3");
        assert_eq!(prompts.template("alt_text").unwrap().id, "alt_text.v1");
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(Prompts::builtin().with_overrides_from(&dir).is_err());
    }
}
