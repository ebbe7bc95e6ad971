//! Per-verb command counts for the end-of-session log line, as Postfix writes it
//! (`disconnect from … ehlo=1 starttls=1 mail=1 rcpt=0/1 quit=1 commands=4/5`): a verb shows
//! `n` when all its n commands succeeded, `ok/n` otherwise.

use crate::command::Verb;

/// Postfix's order, then the verbs Postfix does not have.
const ORDER: [Verb; 15] = [
    Verb::Helo,
    Verb::Ehlo,
    Verb::Lhlo,
    Verb::StartTls,
    Verb::Auth,
    Verb::Mail,
    Verb::Rcpt,
    Verb::Data,
    Verb::Bdat,
    Verb::Rset,
    Verb::Noop,
    Verb::Vrfy,
    Verb::Expn,
    Verb::Help,
    Verb::Quit,
];

/// Commands seen in a session and how many of them failed (got a 4xx/5xx reply).
#[derive(Clone, Debug, Default)]
pub struct CommandStats {
    total: [u32; 15],
    failed: [u32; 15],
    /// Lines that were no command we know (always failures).
    unknown: u32,
    /// The command whose reply is still to come.
    current: Option<usize>,
}

fn index(verb: Verb) -> usize {
    ORDER.iter().position(|v| *v == verb).unwrap_or(0)
}

impl CommandStats {
    /// A command line arrived: `None` = not a verb we know.
    pub(crate) fn begin(&mut self, verb: Option<Verb>) {
        match verb {
            Some(v) => {
                let i = index(v);
                self.total[i] = self.total[i].saturating_add(1);
                self.current = Some(i);
            }
            None => {
                self.unknown = self.unknown.saturating_add(1);
                self.current = None;
            }
        }
    }

    /// The current command got a 4xx/5xx reply (counted once).
    pub(crate) fn fail(&mut self) {
        if let Some(i) = self.current.take() {
            self.failed[i] = self.failed[i].saturating_add(1);
        }
    }

    /// The current command is answered; later replies (timeouts) are not its failures.
    pub(crate) fn done(&mut self) {
        self.current = None;
    }

    /// How many commands of `verb` arrived, and how many of them succeeded.
    pub fn count(&self, verb: Verb) -> (u32, u32) {
        let i = index(verb);
        (self.total[i] - self.failed[i], self.total[i])
    }

    /// `ehlo=1 mail=1 rcpt=0/1 unknown=0/1 commands=2/4`; empty parts left out, `commands=0`
    /// when nothing arrived.
    pub fn summary(&self) -> String {
        let show = |ok: u32, total: u32| {
            if ok == total {
                total.to_string()
            } else {
                format!("{ok}/{total}")
            }
        };
        let mut parts = Vec::new();
        let (mut ok_sum, mut total_sum) = (0u32, 0u32);
        for (i, verb) in ORDER.iter().enumerate() {
            let (total, ok) = (self.total[i], self.total[i] - self.failed[i]);
            if total > 0 {
                parts.push(format!(
                    "{}={}",
                    verb.as_str().to_ascii_lowercase(),
                    show(ok, total)
                ));
                ok_sum = ok_sum.saturating_add(ok);
                total_sum = total_sum.saturating_add(total);
            }
        }
        if self.unknown > 0 {
            parts.push(format!("unknown=0/{}", self.unknown));
            total_sum = total_sum.saturating_add(self.unknown);
        }
        parts.push(format!("commands={}", show(ok_sum, total_sum)));
        parts.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_like_postfix() {
        let mut s = CommandStats::default();
        assert_eq!(s.summary(), "commands=0");
        s.begin(Some(Verb::Ehlo));
        s.done();
        s.begin(Some(Verb::Mail));
        s.begin(Some(Verb::Rcpt));
        s.fail();
        s.fail();
        s.begin(None);
        s.begin(Some(Verb::Quit));
        assert_eq!(
            s.summary(),
            "ehlo=1 mail=1 rcpt=0/1 quit=1 unknown=0/1 commands=3/5"
        );
        assert_eq!(s.count(Verb::Rcpt), (0, 1));
    }
}
