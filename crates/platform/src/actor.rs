//! Who is acting, as every domain crate needs to know it: the user's id and whether they are
//! an admin. Built by the server from the authenticated principal.

/// The acting user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: String,
    pub is_admin: bool,
}

impl Actor {
    pub fn new(user_id: impl Into<String>, is_admin: bool) -> Self {
        Self {
            user_id: user_id.into(),
            is_admin,
        }
    }
}
