// Log Analytics workspace and the workspace-based Application Insights the app sends traces to.

param namePrefix string
param location string
param retentionInDays int = 30
param tags object = {}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-${namePrefix}'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-${namePrefix}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
  }
}

output workspaceId string = workspace.id
output appInsightsName string = appInsights.name
// An ingestion endpoint and instrumentation key: not a credential (it only allows sending telemetry),
// which is why it is an ordinary app setting rather than a Key Vault reference.
output connectionString string = appInsights.properties.ConnectionString
