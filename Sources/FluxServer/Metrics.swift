import Foundation
import Prometheus

/// The service's Prometheus metrics, in a registry of its own (so tests and several apps in one process don't mix).
public final class ServerMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()

    let queueDepth: Gauge
    let runningJobs: Gauge
    let ready: Gauge
    let imagesGenerated: Counter
    let batchSize: ValueHistogram
    let jobQueueSeconds: DurationHistogram
    let jobRunSeconds: DurationHistogram
    let stepSeconds: DurationHistogram
    let gpuMemoryUsed: Gauge
    let gpuMemoryTotal: Gauge
    let loraSwitches: Counter
    let loraSwitchSeconds: DurationHistogram

    /// Request latencies from 1 ms to 10 min; job times from 10 ms to an hour; steps from 1 ms to a minute.
    static let requestBuckets: [Duration] = [.milliseconds(1), .milliseconds(5), .milliseconds(25), .milliseconds(100),
                                             .milliseconds(250), .seconds(1), .seconds(5), .seconds(30), .seconds(120),
                                             .seconds(600)]
    static let jobBuckets: [Duration] = [.milliseconds(10), .milliseconds(100), .milliseconds(500), .seconds(1),
                                         .seconds(2), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
                                         .seconds(300), .seconds(3600)]
    static let stepBuckets: [Duration] = [.milliseconds(1), .milliseconds(5), .milliseconds(20), .milliseconds(50),
                                          .milliseconds(100), .milliseconds(250), .seconds(1), .seconds(5),
                                          .seconds(60)]

    /// LoRA switches upload adapter matrices only: from 1 ms to 10 s.
    static let loraSwitchBuckets: [Duration] = [.milliseconds(1), .milliseconds(5), .milliseconds(20),
                                                .milliseconds(50), .milliseconds(200), .seconds(1), .seconds(10)]

    /// `fluxserve_<metric>_<unit>`.
    static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "fluxserve", metricName: metric, unitName: unit, helpText: help)
    }

    public init() {
        queueDepth = registry.makeGauge(descriptor: Self.name("queue_depth", "", "Jobs waiting to run"))
        runningJobs = registry.makeGauge(descriptor: Self.name("jobs_running", "", "Jobs in the running batch"))
        ready = registry.makeGauge(descriptor: Self.name("ready", "", "1 once the model is loaded and warm"))
        imagesGenerated = registry.makeCounter(descriptor: Self.name("images_generated", "total", "Images generated"))
        batchSize = registry.makeValueHistogram(descriptor: Self.name("batch", "images", "Images per batch run"),
                                                buckets: [1, 2, 4, 8, 16, 32, 64])
        jobQueueSeconds = registry.makeDurationHistogram(
            descriptor: Self.name("job_queue", "seconds", "Time from submission to start"), buckets: Self.jobBuckets)
        jobRunSeconds = registry.makeDurationHistogram(
            descriptor: Self.name("job_run", "seconds", "Time from start to result"), buckets: Self.jobBuckets)
        stepSeconds = registry.makeDurationHistogram(
            descriptor: Self.name("step", "seconds", "Time per denoising step of a batch"), buckets: Self.stepBuckets)
        gpuMemoryUsed = registry.makeGauge(descriptor: Self.name("gpu_memory_used", "bytes", "GPU memory in use (CUDA)"))
        gpuMemoryTotal = registry.makeGauge(descriptor: Self.name("gpu_memory_total", "bytes", "GPU memory (CUDA)"))
        loraSwitches = registry.makeCounter(descriptor: Self.name("lora_switches", "total",
                                                                  "Changes of the LoRA set between batches"))
        loraSwitchSeconds = registry.makeDurationHistogram(
            descriptor: Self.name("lora_switch", "seconds", "Time to change the LoRA set (adapters uploaded, no "
                                  + "weight reloaded)"), buckets: Self.loraSwitchBuckets)
        // Created up front so that a scrape shows them at zero.
        for status in JobStatus.allCases where status.isTerminal { _ = jobsFinished(status) }
    }

    /// Counts one answered request. `route` is the route's template (`/v1/jobs/{id}`), so cardinality stays bounded.
    func recordRequest(route: String, method: String, status: Int, duration: Duration) {
        let method = ["GET", "POST", "DELETE", "HEAD", "PUT", "PATCH", "OPTIONS"].contains(method) ? method : "other"
        registry.makeCounter(descriptor: Self.name("http_requests", "total", "HTTP requests answered, by route, "
                                                   + "method and status"),
                             labels: [("route", route), ("method", method), ("status", String(status))]).increment()
        registry.makeDurationHistogram(descriptor: Self.name("http_request", "seconds", "Time to the response head"),
                                       labels: [("route", route)], buckets: Self.requestBuckets).record(duration)
    }

    func jobsFinished(_ status: JobStatus) -> Counter {
        registry.makeCounter(descriptor: Self.name("jobs_finished", "total", "Jobs that reached a final status"),
                             labels: [("status", status.rawValue)])
    }

    func recordGPUMemory(_ memory: (used: Int, total: Int)?) {
        guard let memory else { return }
        gpuMemoryUsed.set(to: Double(memory.used))
        gpuMemoryTotal.set(to: Double(memory.total))
    }

    /// The text exposition format.
    public func render() -> [UInt8] { registry.emitToBuffer() }
}
