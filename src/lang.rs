//! The language people read: English, or Japanese for the article's own readers. Chosen once,
//! at start ([`Lang::choose`]), and handed to the narration and the summary table, which word
//! what they print with it. Logs, errors and the JSON report stay English (the JSON is for
//! programs: its keys and values never change with the language).

/// A language of the narration and the summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    #[default]
    En,
    Ja,
}

impl Lang {
    /// `--lang` when given; else the locale as POSIX reads it (the first set of `LC_ALL`,
    /// `LC_MESSAGES`, `LANG`): Japanese when it starts with `ja` (`ja_JP.UTF-8`), else English.
    /// `var` reads the environment (`std::env::var`, or a map in tests).
    pub fn choose(flag: Option<Lang>, var: impl Fn(&str) -> Option<String>) -> Lang {
        if let Some(lang) = flag {
            return lang;
        }
        let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
            .into_iter()
            .filter_map(&var)
            .find(|value| !value.is_empty());
        match locale {
            Some(value) if value.starts_with("ja") => Lang::Ja,
            _ => Lang::En,
        }
    }

    /// The English text or the Japanese one.
    pub fn pick<T>(self, en: T, ja: T) -> T {
        match self {
            Lang::En => en,
            Lang::Ja => ja,
        }
    }
}

/// Columns `text` takes on a terminal: CJK ideographs, kana and full-width forms take two.
pub fn width(text: &str) -> usize {
    text.chars().map(|c| if wide(c) { 2 } else { 1 }).sum()
}

fn wide(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x115F
        | 0x2E80..=0x303E
        | 0x3041..=0x33FF
        | 0x3400..=0x4DBF
        | 0x4E00..=0x9FFF
        | 0xA000..=0xA4CF
        | 0xAC00..=0xD7A3
        | 0xF900..=0xFAFF
        | 0xFE30..=0xFE4F
        | 0xFF00..=0xFF60
        | 0xFFE0..=0xFFE6)
}

/// `text` followed by spaces up to `columns` columns (as `{:<N}` does, by terminal columns).
pub fn pad(text: &str, columns: usize) -> String {
    let fill = columns.saturating_sub(width(text));
    format!("{text}{:fill$}", "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn a_japanese_locale_chooses_japanese_and_the_flag_overrides_it() {
        assert_eq!(Lang::choose(None, env(&[])), Lang::En);
        assert_eq!(
            Lang::choose(None, env(&[("LANG", "ja_JP.UTF-8")])),
            Lang::Ja
        );
        assert_eq!(Lang::choose(None, env(&[("LANG", "C.UTF-8")])), Lang::En);
        assert_eq!(
            Lang::choose(Some(Lang::En), env(&[("LANG", "ja_JP.UTF-8")])),
            Lang::En
        );
        assert_eq!(Lang::choose(Some(Lang::Ja), env(&[])), Lang::Ja);
    }

    #[test]
    fn lc_all_then_lc_messages_then_lang_as_posix_reads_them() {
        let en_over_ja = [("LC_ALL", "en_US.UTF-8"), ("LANG", "ja_JP.UTF-8")];
        assert_eq!(Lang::choose(None, env(&en_over_ja)), Lang::En);
        let ja_messages = [("LC_MESSAGES", "ja_JP"), ("LANG", "en_US.UTF-8")];
        assert_eq!(Lang::choose(None, env(&ja_messages)), Lang::Ja);
        // An empty variable counts as unset.
        let empty_all = [("LC_ALL", ""), ("LANG", "ja_JP.UTF-8")];
        assert_eq!(Lang::choose(None, env(&empty_all)), Lang::Ja);
    }

    #[test]
    fn padding_counts_terminal_columns() {
        assert_eq!(width("requests"), 8);
        assert_eq!(width("リクエスト"), 10);
        assert_eq!(pad("判定", 6), "判定  ");
        assert_eq!(pad("verdict", 4), "verdict");
    }
}
