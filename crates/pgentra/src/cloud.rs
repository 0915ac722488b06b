//! Azure clouds: chosen from the PostgreSQL host suffix.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Public,
    UsGovernment,
    China,
}

impl Cloud {
    pub fn from_host(host: &str) -> Cloud {
        let h = host.trim().trim_end_matches('.').to_ascii_lowercase();
        if h.ends_with(".usgovcloudapi.net") {
            Cloud::UsGovernment
        } else if h.ends_with(".chinacloudapi.cn") {
            Cloud::China
        } else {
            Cloud::Public
        }
    }
    pub fn scope(self) -> &'static str {
        match self {
            Cloud::Public => "https://ossrdbms-aad.database.windows.net/.default",
            Cloud::UsGovernment => "https://ossrdbms-aad.database.usgovcloudapi.net/.default",
            Cloud::China => "https://ossrdbms-aad.database.chinacloudapi.cn/.default",
        }
    }
    pub fn authority_host(self) -> &'static str {
        match self {
            Cloud::Public => "https://login.microsoftonline.com",
            Cloud::UsGovernment => "https://login.microsoftonline.us",
            Cloud::China => "https://login.chinacloudapi.cn",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Public => "AzureCloud",
            Cloud::UsGovernment => "AzureUSGovernment",
            Cloud::China => "AzureChinaCloud",
        }
    }
}

/// The v1 `resource` form of a scope (managed identity endpoints, Azure CLI).
pub fn resource_of(scope: &str) -> &str {
    scope.strip_suffix("/.default").unwrap_or(scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn suffixes() {
        assert_eq!(Cloud::from_host("a.postgres.database.azure.com"), Cloud::Public);
        assert_eq!(Cloud::from_host("A.Postgres.Database.ChinaCloudAPI.cn"), Cloud::China);
        assert_eq!(Cloud::from_host("127.0.0.1"), Cloud::Public);
        assert_eq!(resource_of(Cloud::China.scope()), "https://ossrdbms-aad.database.chinacloudapi.cn");
    }
}
