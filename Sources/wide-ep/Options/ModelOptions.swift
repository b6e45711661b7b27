import ArgumentParser
import WideEPCore
import WideEPWorkload

/// The model a command works on: `--preset NAME` or `--config config.json`, then `--set FIELD=VALUE` overrides.
///
/// Shared by every command that needs a `MoEConfig` (`trace generate`, `plan`, `run`, …) through `@OptionGroup`.
struct ModelOptions: ParsableArguments {
    @Option(name: .customLong("preset"), help: "Model preset, e.g. deepseek-v3 (list: `wide-ep presets`).")
    var preset: String?

    @Option(name: .customLong("config"), help: "Hugging Face config.json to read the model from instead of a preset.")
    var config: String?

    @Option(
        name: .customLong("set"),
        help: ArgumentHelp("Override one config field, e.g. --set numMoELayers=4 (repeatable).", valueName: "field=value"))
    var overrides: [String] = []

    /// Whether `--preset` or `--config` was given.
    var isSpecified: Bool { preset != nil || config != nil }

    /// `--set` values split at their first `=`.
    func parsedOverrides() throws -> [(String, String)] {
        try overrides.map { item in
            guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
                throw ValidationError("--set expects FIELD=VALUE, got '\(item)'")
            }
            return (String(item[..<eq]), String(item[item.index(after: eq)...]))
        }
    }

    /// The configuration: the preset or config.json (or `fallback` when neither is given), with the overrides
    /// applied and validated.
    ///
    /// - Throws: `ValidationError` when both or (without a fallback) neither source is given, or a `--set` is not
    ///   FIELD=VALUE; `ConfigError` / `HFConfigError` for unknown presets, bad files or invalid overrides.
    func resolve(fallback: MoEConfig? = nil) throws -> MoEConfig {
        let sets = try parsedOverrides()
        switch (preset, config) {
        case (.some, .some):
            throw ValidationError("give either --preset or --config, not both")
        case let (.some(name), nil):
            return try MoEConfig.preset(named: name).overriding(sets)
        case let (nil, .some(path)):
            return try HFConfig.load(path: path, overrides: sets)
        case (nil, nil):
            guard let fallback else {
                throw ValidationError("no model given: pass --preset NAME (see `wide-ep presets`) or --config config.json")
            }
            return try fallback.overriding(sets)
        }
    }
}
