// Package asynqmsg is asynq's stored job message (its protobuf
// TaskMessage, registered by the asynq in go.mod) as the scripts that
// write jobs by hand need it: the Go side that takes a message apart or
// builds one (tasks' enqueue script adding a partner event's sequence, the
// flows' advancement script enqueueing the next steps), and the Lua that
// appends a field to a message. tasks TestEnqueueScriptStoresWhatAsynqStores
// and flows' inline tests pin the result against asynq's own encoding.
package asynqmsg

import (
	"fmt"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Name is the full protobuf name of asynq's message.
const Name = "asynq.TaskMessage"

// Type is asynq's message type, or an error when the asynq linked in does
// not register it.
func Type() (protoreflect.MessageType, error) {
	mt, err := protoregistry.GlobalTypes.FindMessageByName(Name)
	if err != nil {
		return nil, fmt.Errorf("asynq's message type %s: %w", Name, err)
	}
	return mt, nil
}

// PayloadField is the number of the message's payload field (bytes).
func PayloadField() (protoreflect.FieldNumber, error) {
	mt, err := Type()
	if err != nil {
		return 0, err
	}
	fd := mt.Descriptor().Fields().ByName("payload")
	if fd == nil || fd.Kind() != protoreflect.BytesKind {
		return 0, fmt.Errorf("asynq's message %s has no bytes field payload", Name)
	}
	return fd.Number(), nil
}

// Lua defines, for a script that includes it, varint(n) (n as a protobuf
// varint) and field(tag, v) (a length-delimited field: its tag bytes, the
// length of v, v).
const Lua = `
local function varint(n)
  local b = {}
  while n >= 128 do
    b[#b + 1] = string.char(n % 128 + 128)
    n = math.floor(n / 128)
  end
  b[#b + 1] = string.char(n)
  return table.concat(b)
end
local function field(tag, v) return tag .. varint(#v) .. v end
`
