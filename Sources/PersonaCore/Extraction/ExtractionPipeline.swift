import Foundation
import PersonaModels

/// sums.json: a shard's sufficient statistics and what they belong to.
public struct SumsFile: Codable, Sendable, Equatable {
    public var trait: String
    public var model: String
    public var positive: String?
    public var shard: Shard
    public var sums: ActivationSums
    public init(trait: String, model: String, positive: String?, shard: Shard, sums: ActivationSums) {
        self.trait = trait; self.model = model; self.positive = positive; self.shard = shard; self.sums = sums
    }
}

/// What `finish` produced.
public struct ExtractionOutcome: Sendable {
    public var vectors: [TraitVector]
    public var reports: [LayerReport]
}

extension ExtractionRun {
    /// Reopens an existing run folder with the settings stored in its run.json.
    public static func open(folder: URL, loaded: LoadedModel) throws -> ExtractionRun {
        let meta = try readJSON(RunMeta.self, from: folder.appendingPathComponent("run.json"))
        return try ExtractionRun(folder: folder, trait: meta.traitDefinition, options: meta.options, loaded: loaded)
    }

    /// Filters, accumulates and saves this shard's statistics (sums.json, filter.json, CSVs). Returns the
    /// sums and the kept eval pairs (for the layer report).
    public func accumulateAndSave(judged: Bool, progress: ExtractionProgress? = nil)
        throws -> (sums: ActivationSums, reports: [FilterReport], evalKept: [(pos: ResponseRecord, neg: ResponseRecord)]) {
        try writeCSVs()
        let (kept, rep) = filter(.extract, judged: judged)
        let (evalKept, evalRep) = filter(.eval, judged: judged)
        try Self.writeJSON([rep, evalRep], to: folder.appendingPathComponent("filter.json"))
        guard !kept.isEmpty else {
            var why = "no extraction pair passed the filter (\(rep.pairs) pairs); see \(folder.appendingPathComponent("filter.json").path)\n\(rep.text)"
            if rep.judged, rep.pairs > 0, rep.missingScores == rep.pairs {
                why += "\nThe judge scored none of them: a score needs a quarter of the judge's next-token probability on the"
                    + " numbers 0-100, and this judge put it elsewhere (small models open with words). Judge with a stronger"
                    + " model (--judge openai, or --judge local --judge-model PATH), or keep every pair with --judge none;"
                    + " rerun with the other settings as they were (run.json; only the thresholds may change): the answers"
                    + " in responses.jsonl are kept and will not be generated again."
            }
            throw VectorError(why)
        }
        let sums = try accumulate(kept, progress: progress)
        try Self.writeJSON(SumsFile(trait: trait.name, model: loaded.name, positive: trait.positive, shard: options.shard, sums: sums),
                           to: folder.appendingPathComponent("sums.json"))
        return (sums, [rep, evalRep], evalKept)
    }

    /// Projections of held-out pairs onto each method's vector, for every row: [method: (pos, neg)].
    public func evalProjections(_ pairs: [(pos: ResponseRecord, neg: ResponseRecord)], vectors: [TraitVector],
                                progress: ExtractionProgress? = nil) throws -> [String: (pos: [[Double]], neg: [[Double]])] {
        var out: [String: (pos: [[Double]], neg: [[Double]])] = [:]
        for v in vectors { out[v.method] = ([], []) }
        // 4 pairs (8 sequences) per batched forward pass, like the accumulation
        try traceRows(pairs, pairsPerPass: 4, progress: { progress?($0, pairs.count, "eval pairs projected") }) { r, isPos, trace in
            let avg = try SampleAverages(hiddenStates: trace.hiddenStates, promptLength: r.promptIds.count,
                                         hiddenSize: loaded.config.hiddenSize)
            for v in vectors {
                guard let m = AverageMethod(rawValue: v.method), let x = avg.byMethod[m] else { continue }
                let p = SampleAverages.project(x, onto: v)
                if isPos { out[v.method]!.pos.append(p) } else { out[v.method]!.neg.append(p) }
            }
        }
        return out
    }
}

public enum ExtractionPipeline {
    /// Turns (merged) sums into the three vectors, runs the layer report on the held-out pairs (when there are
    /// any and a run is given to forward them), and writes vectors.safetensors, layer_report.json and sums.json to `out`.
    public static func finish(sums: ActivationSums, trait: String, model: String, positive: String?,
                              evalPairs: [(pos: ResponseRecord, neg: ResponseRecord)], forwardWith run: ExtractionRun?,
                              out: URL, progress: ExtractionProgress? = nil) throws -> ExtractionOutcome {
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        var vectors = try AverageMethod.allCases.map { try sums.vector(trait: trait, method: $0, model: model, positiveMeaning: positive) }
        var reports: [LayerReport] = []
        if let run, !evalPairs.isEmpty {
            let proj = try run.evalProjections(evalPairs, vectors: vectors, progress: progress)
            for i in vectors.indices {
                guard let p = proj[vectors[i].method] else { continue }
                let rep = LayerReport(vector: vectors[i], positive: p.pos, negative: p.neg)
                vectors[i].recommendedRow = rep.recommendedRow
                reports.append(rep)
            }
            try ExtractionRun.writeJSON(reports, to: out.appendingPathComponent("layer_report.json"))
        }
        try ExtractionRun.writeJSON(SumsFile(trait: trait, model: model, positive: positive, shard: .whole, sums: sums),
                                    to: out.appendingPathComponent("sums.json"))
        try VectorFiles.save(vectors, to: out.appendingPathComponent("vectors.safetensors"))
        return ExtractionOutcome(vectors: vectors, reports: reports)
    }

    /// Merges shard folders' sums.json exactly. Checks they are shards of the same trait and model.
    public static func mergeSums(_ folders: [URL]) throws -> SumsFile {
        guard let first = folders.first else { throw VectorError("extract merge: no shard folders given") }
        for f in folders where !FileManager.default.fileExists(atPath: f.appendingPathComponent("sums.json").path) {
            throw VectorError("\(f.path) has no sums.json: that shard has not finished (rerun it with the same settings: it resumes), then merge again")
        }
        // Shards must be parts of one run: the same trait file, model and options but for the shard.
        var settings: ExtractionRun.RunMeta? = nil
        for f in folders {
            guard let data = try? Data(contentsOf: f.appendingPathComponent("run.json")),
                  var meta = try? JSONDecoder().decode(ExtractionRun.RunMeta.self, from: data) else { continue }
            meta.options.shard = .whole
            if let s = settings, s != meta {
                throw VectorError("\(f.path): this shard ran other settings than \(first.path) (trait file, model or options differ); merge only shards of one run")
            }
            settings = meta
        }
        let firstFile = first.appendingPathComponent("sums.json")
        var merged = try ExtractionRun.readJSON(SumsFile.self, from: firstFile)
        try merged.sums.validate(source: firstFile.path)
        var seen: Set<Int> = [merged.shard.index]
        for f in folders.dropFirst() {
            let s = try ExtractionRun.readJSON(SumsFile.self, from: f.appendingPathComponent("sums.json"))
            guard s.trait == merged.trait, s.model == merged.model else {
                throw VectorError("\(f.path): shard of \(s.trait) on \(s.model), the others are \(merged.trait) on \(merged.model)")
            }
            guard s.shard.count == merged.shard.count, seen.insert(s.shard.index).inserted else {
                throw VectorError("\(f.path): shard \(s.shard) repeats or does not match the others (of \(merged.shard.count))")
            }
            try merged.sums.merge(s.sums, source: f.appendingPathComponent("sums.json").path)
        }
        if seen.count != merged.shard.count {
            let missing = (0..<merged.shard.count).filter { !seen.contains($0) }.map(String.init).joined(separator: ", ")
            throw VectorError("extract merge: shards \(missing) of \(merged.shard.count) are missing")
        }
        merged.shard = .whole
        return merged
    }
}
