//! The values an activity is made of. Each type can only hold a valid value: it is parsed once, at
//! the edge, and the rest of the program never re-checks it. Every parse error names its field.
//! One file per concept; the modules are private and every type is re-exported here (and from
//! [`crate::domain`]), so each has one import path.

mod activity_type;
mod dates;
mod identifiers;
mod measures;
mod text;
mod versions;

pub use activity_type::ActivityType;
pub use dates::ActivityDate;
pub(crate) use dates::{write_digits, write_iso_date};
pub use identifiers::{ActivityId, CorrelationId, UserId};
pub(crate) use identifiers::{parse_ulid, serialize_ulid};
pub use measures::{Calories, Distance, DurationMinutes};
pub use text::{ActivityTitle, FreeText, Tag, Tags};
pub use versions::Version;
