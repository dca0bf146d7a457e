/**
 * The scrapers in the field, with the Accept and Accept-Encoding each sends verbatim, taken from
 * its own source (the path and version are named on each). Where a scraper builds its header
 * from a list, the list and the builder are named and the header is what the builder makes of
 * the default list.
 */
export interface Scraper {
  name: string;
  /** Undefined: the header is not sent. */
  accept: string | undefined;
  acceptEncoding: string | undefined;
}

const PB = 'application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited';

/** prometheus/prometheus v3.4.0+ scrape/scrape.go acceptHeader(config.DefaultScrapeProtocols, allow-utf-8): escaping only on text 1.0.0 and OpenMetrics 1.0.0. */
const PROMETHEUS_3_4 =
  'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2';

export const SCRAPERS: readonly Scraper[] = [
  // prometheus/prometheus v2.42.0 scrape/scrape.go scrapeAcceptHeader; Accept-Encoding from acceptEncodingHeader(enable_compression: true).
  {
    name: 'Prometheus 2.42',
    accept: 'application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1',
    acceptEncoding: 'gzip',
  },
  // v2.42.0 scrape/scrape.go scrapeAcceptHeaderWithProtobuf (--enable-feature=native-histograms).
  {
    name: 'Prometheus 2.42, protobuf first',
    accept: `${PB},application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`,
    acceptEncoding: 'gzip',
  },
  // v2.49.0 scrape/scrape.go acceptHeader(config.DefaultScrapeProtocols); config/config.go ScrapeProtocolsHeaders has 4 entries (weights from 0.5).
  {
    name: 'Prometheus 2.49',
    accept: 'application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
    acceptEncoding: 'gzip',
  },
  // v2.49.0 acceptHeader(config.DefaultNativeHistogramScrapeProtocols).
  {
    name: 'Prometheus 2.49, protobuf first',
    accept: `${PB};q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1`,
    acceptEncoding: 'gzip',
  },
  // v2.55.0 scrape/scrape.go acceptHeader(sps, model.LegacyValidation): legacy names are 2.x's default, so no escaping term.
  {
    name: 'Prometheus 2.55',
    accept: 'application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
    acceptEncoding: 'gzip',
  },
  // v2.55.0 acceptHeader(config.DefaultProtoFirstScrapeProtocols, legacy).
  {
    name: 'Prometheus 2.55, protobuf first',
    accept: `${PB};q=0.5,application/openmetrics-text;version=1.0.0;q=0.4,application/openmetrics-text;version=0.0.1;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1`,
    acceptEncoding: 'gzip',
  },
  // v3.0.0 (to v3.2.0) scrape/scrape.go acceptHeader with UTF8Validation (3.0's default): `;escaping=allow-utf-8` on every clause,
  // twice on text 1.0.0, whose config/config.go ScrapeProtocolsHeaders entry already has it; 5 entries (weights from 0.6).
  {
    name: 'Prometheus 3.0-3.2',
    accept:
      'application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=0.0.1;escaping=allow-utf-8;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;escaping=allow-utf-8;q=0.3,*/*;q=0.2',
    acceptEncoding: 'gzip',
  },
  // v3.0.0 acceptHeader(config.DefaultProtoFirstScrapeProtocols, utf8).
  {
    name: 'Prometheus 3.0-3.2, protobuf first',
    accept: `${PB};escaping=allow-utf-8;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;escaping=allow-utf-8;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;escaping=allow-utf-8;q=0.2,*/*;q=0.1`,
    acceptEncoding: 'gzip',
  },
  // v3.4.0 (and v3.5.0, v3.9.0) scrape/scrape.go acceptHeader: the escaping term only on text 1.0.0 and OpenMetrics 1.0.0.
  { name: 'Prometheus 3.4+', accept: PROMETHEUS_3_4, acceptEncoding: 'gzip' },
  // v3.4.0 acceptHeader(config.DefaultProtoFirstScrapeProtocols, allow-utf-8): no escaping term on protobuf.
  {
    name: 'Prometheus 3.4+, protobuf first',
    accept: `${PB};q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1`,
    acceptEncoding: 'gzip',
  },
  // grafana/alloy internal/component/prometheus/scrape/scrape.go: config.DefaultScrapeProtocols, metric_name_validation_scheme
  // legacy by default, so escaping=underscores, through the vendored Prometheus 3.4+ scrape.acceptHeader.
  {
    name: 'Grafana Alloy',
    accept:
      'application/openmetrics-text;version=1.0.0;escaping=underscores;q=0.6,application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=underscores;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2',
    acceptEncoding: 'gzip',
  },
  // open-telemetry/opentelemetry-collector-contrib receiver/prometheusreceiver: Prometheus's scrape manager (v3.4+) with its
  // defaults (UTF-8 names), so Prometheus 3.4+'s header.
  { name: 'OpenTelemetry Collector', accept: PROMETHEUS_3_4, acceptEncoding: 'gzip' },
  // VictoriaMetrics/VictoriaMetrics lib/promscrape/client.go ReadData (vmagent 1.79 to 1.145); Go's transport adds gzip.
  { name: 'vmagent', accept: 'text/plain;version=0.0.4;q=1,*/*;q=0.1', acceptEncoding: 'gzip' },
  // influxdata/telegraf v1.22.0 plugins/inputs/prometheus/prometheus.go acceptHeader.
  {
    name: 'Telegraf before 1.23',
    accept: `${PB};q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1`,
    acceptEncoding: 'gzip',
  },
  // influxdata/telegraf v1.23.0 plugins/inputs/prometheus/prometheus.go (596b0e1 dropped `*/*`; unchanged since).
  { name: 'Telegraf 1.23+', accept: `${PB};q=0.7,text/plain;version=0.0.4;q=0.3`, acceptEncoding: 'gzip' },
  // DataDog/integrations-core datadog_checks_base/datadog_checks/base/checks/openmetrics/v2/scraper.py (requests adds gzip, deflate).
  { name: 'Datadog openmetrics', accept: 'text/plain', acceptEncoding: 'gzip, deflate' },
  // Same file, use_latest_spec: true.
  { name: 'Datadog openmetrics, use_latest_spec', accept: 'application/openmetrics-text; version=0.0.1; charset=utf-8', acceptEncoding: 'gzip, deflate' },
  // netdata/netdata src/go/plugins/pkg/prometheus (go.d) acceptHeader; Go's transport adds gzip.
  { name: 'Netdata go.d', accept: 'text/plain;version=0.0.4;q=1,*/*;q=0.1', acceptEncoding: 'gzip' },
  // elastic/beats metricbeat/helper/prometheus/prometheus.go acceptHeader, SetHeaderDefault("Accept-Encoding", "gzip").
  { name: 'Metricbeat prometheus', accept: 'text/plain;version=0.0.4;q=0.5,*/*;q=0.1', acceptEncoding: 'gzip' },
  // elastic/beats metricbeat/helper/openmetrics/openmetrics.go acceptHeader.
  { name: 'Metricbeat openmetrics', accept: 'application/openmetrics-text; version=1.0.0; charset=utf-8,text/plain', acceptEncoding: 'gzip' },
  // curl 8 without --compressed: Accept: */*, no Accept-Encoding.
  { name: 'curl', accept: '*/*', acceptEncoding: undefined },
];

export function headersOf(s: Scraper): Record<string, string> {
  const headers: Record<string, string> = {};
  if (s.accept !== undefined) headers['accept'] = s.accept;
  if (s.acceptEncoding !== undefined) headers['accept-encoding'] = s.acceptEncoding;
  return headers;
}
