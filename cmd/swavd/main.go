package main
import (
 _ "gorgonia.org/tensor"
 _ "gonum.org/v1/gonum/blas/gonum"
 _ "github.com/spf13/viper"
 _ "github.com/spf13/pflag"
 _ "golang.org/x/term"
)
func main(){}
