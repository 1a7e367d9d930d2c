/// Errors from building a model out of a checkpoint, or from feeding it inputs. Each names the file or tensor.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    case missingFile(path: String, expected: String)
    case unknownLayout(path: String, reason: String)
    case invalidConfig(source: String, reason: String)
    case missingWeight(name: String, source: String)
    case weightShape(name: String, shape: [Int], expected: [Int], source: String)
    case missingInput(name: String, expected: String)
    case inputShape(name: String, shape: [Int], expected: String)
    /// An option given for a kind of model it does not apply to (e.g. `--vae` with a pipeline folder).
    case inapplicableOption(option: String, reason: String)

    public var description: String {
        switch self {
        case let .missingFile(path, expected): "\(path): missing (expected \(expected))"
        case let .unknownLayout(path, reason): "\(path): not a recognised checkpoint: \(reason)"
        case let .invalidConfig(source, reason): "\(source): invalid config: \(reason)"
        case let .missingWeight(name, source): "\(source): missing weight \(name)"
        case let .weightShape(name, shape, expected, source):
            "\(source): weight \(name) has shape \(shape), expected \(expected)"
        case let .missingInput(name, expected): "missing input tensor \(name) (expected \(expected))"
        case let .inputShape(name, shape, expected): "input \(name) has shape \(shape), expected \(expected)"
        case let .inapplicableOption(option, reason): "\(option) does not apply: \(reason)"
        }
    }
}
