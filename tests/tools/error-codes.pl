#!/usr/bin/perl
# Gives every cp_error_set/_errno/_at call an explicit exit code: the code
# the error would have had under the old sticky rule (the last
# "ERR->code = X;" in an enclosing scope before it, or one right after the
# call's statement), else EXIT_USAGE. Drops assignment lines whose every use
# became explicit. Reformats the touched calls with clang-format.
use strict; use warnings;
my $call = qr/cp_error_(set|errno|at)\(\s*([^,()]+?(?:\([^()]*\))?)[ \t]*,[ \t]*(?!EXIT_|code,)/;
for my $file (@ARGV) {
	open my $fh, '<', $file or die; my @l = <$fh>; close $fh;
	my (%drop, @ranges, %sticky, %uses, %other);
	my $depth = 0;
	my @depth_at;
	for (my $i = 0; $i < @l; $i++) {
		my $s = $l[$i]; $s =~ s/"(?:[^"\\]|\\.)*"//g; $s =~ s/'(?:[^'\\]|\\.)*'//g;
		$depth_at[$i] = $depth;
		if ($l[$i] =~ /^\s*([\w>.-]*?)(->|\.)code\s*=\s*(EXIT_\w+|0|code);\s*$/) {
			my $acc = "$1$2code";
			if ($3 eq '0') { delete $sticky{$acc}; }
			else { $sticky{$acc} = [$3, $depth, $i]; }
		}
		# calls of other functions taking the error keep a sticky line alive
		for my $acc (keys %sticky) {
			my ($base) = $acc =~ /^(.*?)(?:->|\.)code$/;
			my $ev = $acc =~ /\.code$/ ? "&$base" : $base;
			$other{$sticky{$acc}[2]} = 1 if $s =~ /\w+\([^;]*\b\Q$ev\E\s*\)/ && $s !~ /cp_error_\w+\(/;
		}
		$depth += () = $s =~ /\{/g; $depth -= () = $s =~ /\}/g;
		for my $acc (keys %sticky) { delete $sticky{$acc} if $depth < $sticky{$acc}[1]; }
		next unless $l[$i] =~ $call;
		next if $file =~ m{lib/error\.c$};
		my ($fn, $ev) = ($1, $2); $ev =~ s/\s+$//;
		my $acc = $ev =~ /^&(.*)$/ ? "$1.code" : "$ev->code";
		my $qa = quotemeta($acc);
		my $j = $i; my $d = 0;
		for (my $k = $i; $k < @l; $k++) {
			my $t = $l[$k]; $t =~ s/"(?:[^"\\]|\\.)*"//g;
			$d += () = $t =~ /\(/g; $d -= () = $t =~ /\)/g;
			if ($d <= 0 && $t =~ /;/) { $j = $k; last; }
		}
		my $code;
		for my $q ($j + 1 .. $j + 3) {
			last if $q >= @l;
			if ($l[$q] =~ /^\s*$qa\s*=\s*(EXIT_\w+|code);\s*$/) { $code = $1; $drop{$q} = 1; last; }
			last unless $l[$q] =~ /^\s*(\/\*.*\*\/|size_t n = strlen.*|while \(n && .*|.*err->msg\[--n\].*|else\b.*|\}\s*|.*cp_error_\w+\(.*|\s*"[^"]*"[,)].*|\s*[\w>. -]+[,)];?)\s*$/;
		}
		if ($sticky{$acc}) { $code //= $sticky{$acc}[0]; $uses{$sticky{$acc}[2]} = 1; }
		$code //= 'EXIT_USAGE';
		if ($l[$i] =~ /cp_error_(set|errno|at)\(\s*\Q$ev\E[ \t]*,[ \t]*\n/) {
			$l[$i] =~ s/cp_error_(set|errno|at)\(\s*\Q$ev\E[ \t]*,[ \t]*\n/cp_error_$1($ev, $code,\n/;
		} else {
			$l[$i] =~ s/cp_error_(set|errno|at)\(\s*\Q$ev\E[ \t]*,[ \t]*/cp_error_$1($ev, $code, /;
		}
		push @ranges, [$i, $j];
	}
	for my $i (keys %uses) { $drop{$i} = 1 unless $other{$i}; }
	for my $i (keys %other) { print STDERR "$file:", $i + 1, ": kept (a callee may make the error)\n" if $uses{$i}; }
	next unless @ranges || %drop;
	my @out; my @map; my $n = 0;
	for my $i (0 .. $#l) { $map[$i] = $n + 1; unless ($drop{$i}) { push @out, $l[$i]; $n++; } }
	my $lines = join ' ', map { "--lines=$map[$_->[0]]:$map[$_->[1]]" } @ranges;
	open my $oh, '>', $file or die; print $oh @out; close $oh;
	system("clang-format -i $lines $file") == 0 or warn "clang-format $file" if @ranges;
}
