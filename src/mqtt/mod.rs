//! MQTT 5 on the wire: framing (`codec`) and the client protocol state machine (`session`), both sans-IO except the codec's tokio-util traits.
pub mod codec;
pub mod inbound;
pub mod session;
pub use codec::{CodecError, MqttCodec, Outbound};
pub use inbound::{BadFrame, Inbound, InboundCodec};
pub use session::{
    Event, MAX_QUEUED, Outgoing, ProtocolError, PublishError, PublishProperties, Session,
    SessionConfig,
};
