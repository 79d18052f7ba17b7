//! The light: a responder. It applies `ON`/`OFF`/`TOGGLE` and publishes its new state to the
//! request's Response Topic, copying the Correlation Data byte for byte.

use bytes::Bytes;

/// A payload that is not `ON`, `OFF` or `TOGGLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown command: expected ON, OFF or TOGGLE")]
pub struct UnknownCommand;

/// A light's switch, free of I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LightState {
    on: bool,
}

impl LightState {
    pub fn new(on: bool) -> Self {
        Self { on }
    }

    pub fn is_on(self) -> bool {
        self.on
    }

    /// Applies a command (case and surrounding blanks ignored). An unknown command changes
    /// nothing.
    pub fn apply(&mut self, command: &[u8]) -> Result<(), UnknownCommand> {
        let text = std::str::from_utf8(command)
            .map_err(|_| UnknownCommand)?
            .trim();
        self.on = match text.to_ascii_uppercase().as_str() {
            "ON" => true,
            "OFF" => false,
            "TOGGLE" => !self.on,
            _ => return Err(UnknownCommand),
        };
        Ok(())
    }

    /// The state as published in answers: `{"power":"ON"}`.
    pub fn answer(self) -> Bytes {
        let power = if self.on { "ON" } else { "OFF" };
        Bytes::from(format!("{{\"power\":\"{power}\"}}"))
    }

    /// The answer to a command it does not know: its state, and what was wrong.
    pub fn rejection(self, command: &[u8]) -> Bytes {
        let power = if self.on { "ON" } else { "OFF" };
        // Echo a little of it, never a whole huge payload back.
        const SHOWN: usize = 40;
        let text = String::from_utf8_lossy(&command[..command.len().min(SHOWN)]);
        let shown = if command.len() > SHOWN {
            format!("{text}...")
        } else {
            text.into_owned()
        };
        let body =
            serde_json::json!({ "power": power, "error": format!("unknown command {shown:?}") });
        Bytes::from(body.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_off_toggle_switch_the_light() {
        let mut light = LightState::new(false);
        light.apply(b"ON").unwrap();
        assert!(light.is_on());
        light.apply(b" toggle\n").unwrap();
        assert!(!light.is_on());
        light.apply(b"Toggle").unwrap();
        assert!(light.is_on());
        light.apply(b"off").unwrap();
        assert!(!light.is_on());
    }

    #[test]
    fn unknown_or_binary_command_changes_nothing() {
        let mut light = LightState::new(true);
        assert!(light.apply(b"DIM 50").is_err());
        assert!(light.apply(&[0xff, 0xfe]).is_err());
        assert!(light.is_on());
    }

    #[test]
    fn answers_are_json_state() {
        assert_eq!(&LightState::new(true).answer()[..], br#"{"power":"ON"}"#);
        let rejection = LightState::new(false).rejection(b"DIM");
        let value: serde_json::Value = serde_json::from_slice(&rejection).unwrap();
        assert_eq!(value["power"], "OFF");
        assert_eq!(value["error"], "unknown command \"DIM\"");
        let huge = LightState::new(false).rejection(&[b'x'; 10_000]);
        assert!(huge.len() < 200, "{} bytes", huge.len());
    }
}
