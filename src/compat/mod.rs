//! Other providers' APIs offered as front doors ("drop-in routes"), so their official SDKs can use
//! the gateway: each module translates that API's requests into canonical ones and canonical
//! answers back, whichever provider serves the model.

pub mod anthropic;
pub mod genai;
